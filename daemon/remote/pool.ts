/**
 * A bounded pool of concurrent async tasks, for parallel uploads with backpressure: run() waits for a free
 * slot and starts the task; drain() waits for every task. The first failure is kept: later run() calls and
 * drain() throw it (no unhandled rejections, no work started after a failure).
 */
export class TaskPool {
  private readonly running = new Set<Promise<void>>();
  private failure: { error: unknown } | null = null;

  constructor(readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`TaskPool limit must be a positive integer, got ${limit}`);
  }

  /** Tasks started and not finished. */
  get active(): number {
    return this.running.size;
  }

  /** The first error a task threw, if any. */
  get error(): unknown {
    return this.failure?.error;
  }

  /** Throws the first failure, if a task failed. */
  check(): void {
    if (this.failure !== null) throw this.failure.error;
  }

  /** Waits for a free slot, then starts `task` (without waiting for it to finish). */
  async run(task: () => Promise<void>): Promise<void> {
    this.check();
    while (this.running.size >= this.limit) {
      await Promise.race(this.running);
      this.check();
    }
    const p: Promise<void> = (async () => {
      try {
        await task();
      } catch (e) {
        this.failure ??= { error: e };
      }
    })();
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }

  /** Waits for every started task; throws the first failure. */
  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
    this.check();
  }

  /** Waits for every started task, ignoring failures (before cleaning up after one). */
  async settle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }
}
