/**
 * A readers–writer lock for promises: readers run together, a writer runs alone, and requests are served
 * in arrival order (a waiting writer holds back later readers, so writers do not starve).
 */
export class RwLock {
  private readers = 0;
  private writer = false;
  private readonly queue: { exclusive: boolean; start: () => void }[] = [];

  read<T>(fn: () => Promise<T>): Promise<T> {
    return this.acquire(false, fn);
  }

  write<T>(fn: () => Promise<T>): Promise<T> {
    return this.acquire(true, fn);
  }

  /** Resolves once everything queued before this call has finished. */
  async drain(): Promise<void> {
    await this.write(async () => undefined);
  }

  private acquire<T>(exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = (): void => {
        if (exclusive) this.writer = true;
        else this.readers++;
        fn()
          .then(resolve, reject)
          .finally(() => {
            if (exclusive) this.writer = false;
            else this.readers--;
            this.pump();
          });
      };
      this.queue.push({ exclusive, start });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.writer) {
      const next = this.queue[0] as { exclusive: boolean; start: () => void };
      if (next.exclusive && this.readers > 0) return;
      this.queue.shift();
      next.start();
      if (next.exclusive) return;
    }
  }
}
