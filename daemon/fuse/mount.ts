/**
 * Mounting a frontend with fuse-native. fuse-native's option list has no `big_writes`; without it the kernel
 * hands the daemon 4 KiB writes (~32 MB/s through a no-crypto passthrough here, ~184 MB/s with big writes),
 * so dvfs adds big_writes and 128 KiB max_write/max_read to the options fuse-native builds.
 */
import Fuse, { type FuseOperations, type FuseOptions } from 'fuse-native';

export interface MountOptions {
  allowOther?: boolean;
  readOnly?: boolean;
  /** Kernel readahead window in bytes (default 1 MiB: more reads in flight for the codec's thread pool). */
  readahead?: number;
  /** Shown as the mount source in /proc/mounts. */
  fsname?: string;
}

const MAX_IO = 128 * 1024;

class DvfsFuse extends Fuse {
  constructor(
    mnt: string,
    ops: FuseOperations,
    opts: FuseOptions,
    private readonly extra: string[],
  ) {
    super(mnt, ops, opts);
  }

  protected override _fuseOptions(): string {
    const base = super._fuseOptions();
    const extra = this.extra.join(',');
    return base ? `${base},${extra}` : `-o${extra}`;
  }
}

export interface MountedFuse {
  mountpoint: string;
  unmount(): Promise<void>;
}

export function mountFuse(mountpoint: string, ops: FuseOperations, options: MountOptions = {}): Promise<MountedFuse> {
  // use_ino: st_ino is the ciphertext file's (hard links share it, as tar / rsync -H / du expect).
  // negative_timeout: a name just found missing stays missing for a second (this daemon is the only writer of
  // its tree, and its own creates invalidate the kernel's negative entry), saving a lookup per file created.
  const extra = ['big_writes', `max_write=${MAX_IO}`, `max_read=${MAX_IO}`, `max_readahead=${options.readahead ?? 1 << 20}`, 'negative_timeout=1', 'use_ino', 'subtype=dvfs'];
  if (options.readOnly) extra.push('ro');
  const fuse = new DvfsFuse(
    mountpoint,
    ops,
    {
      fsname: (options.fsname ?? 'dvfs').replace(/[,\s]/g, '_'),
      allowOther: options.allowOther ?? false,
      defaultPermissions: true,
      maxRead: MAX_IO,
      entryTimeout: 1,
      attrTimeout: 1,
      // A slow request (a huge write batch on a loaded node) must not be failed by fuse-native's own timer.
      timeout: false,
    },
    extra,
  );
  return new Promise((resolve, reject) => {
    fuse.mount((err) => {
      if (err) return reject(err);
      resolve({
        mountpoint,
        unmount: () =>
          new Promise<void>((res, rej) => {
            fuse.unmount((e) => (e ? rej(e) : res()));
          }),
      });
    });
  });
}
