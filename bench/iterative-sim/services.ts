/**
 * What the benchmark runs against: the test suite's real single-node SLURM (test/helpers/slurm.ts) and real
 * local OpenStack Swift (test/helpers/swift.ts), started once per benchmark and stopped at the end (their
 * watchdogs stop them too if this process is killed), plus the tools each variant needs.
 */
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { fuseAvailable } from '../../test/helpers/mount.js';
import { slurmAvailable, startSlurm, type SlurmCluster } from '../../test/helpers/slurm.js';
import { startSwift, swiftAvailable, type SwiftServer } from '../../test/helpers/swift.js';
import { which } from '../lib/proc.js';
import type { VariantId } from './options.js';

export interface Services {
  slurm: SlurmCluster;
  swift: SwiftServer;
  stop(): Promise<void>;
}

const TOOLS: Record<VariantId, Array<[string, string]>> = {
  plain: [
    ['git', 'git'],
    ['git-annex', 'git-annex'],
  ],
  encfs: [
    ['git', 'git'],
    ['git-annex', 'git-annex'],
    ['encfs', 'encfs'],
    ['fusermount', 'fuse3'],
  ],
  dvfs: [],
};

/** Why the benchmark cannot run here (missing services or tools, named with their Debian packages), or null. */
export function whyUnavailable(variants: readonly VariantId[]): string | null {
  const service = slurmAvailable() ?? swiftAvailable() ?? (variants.includes('dvfs') ? fuseAvailable() : null);
  if (service !== null) return service;
  const missing = new Map<string, string>();
  for (const v of variants) for (const [cmd, pkg] of TOOLS[v]) if (which(cmd) === null) missing.set(cmd, pkg);
  if (missing.size === 0) return null;
  return `missing ${[...missing.keys()].join(', ')} (apt-get install ${[...new Set(missing.values())].join(' ')}; test/setup.sh installs them)`;
}

/** Starts SLURM (8 CPUs declared, as the SLURM tests do) and Swift; stop() stops both. */
export async function startServices(log: (line: string) => void): Promise<Services> {
  const stops: Array<() => unknown> = [];
  const host = { teardown: (fn: () => unknown) => void stops.push(fn) };
  const stop = async (): Promise<void> => {
    for (const fn of stops.splice(0).reverse()) {
      try {
        await fn();
      } catch (e) {
        log(`cleanup: ${(e as Error).message}`);
      }
    }
  };
  try {
    const slurm = await startSlurm(host, { cpus: 8 });
    log(`SLURM up (SLURM_CONF ${slurm.conf})`);
    const swift = await startSwift(host);
    log(`Swift up at ${swift.endpoint}`);
    return { slurm, swift, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

export async function createBucket(swift: SwiftServer, bucket: string): Promise<void> {
  const client = swift.client();
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}

/** S3 credentials of the Swift in the AWS_* variables (what dvfs and git-annex read). */
export function s3Env(swift: SwiftServer, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...base, AWS_ACCESS_KEY_ID: swift.accessKeyId, AWS_SECRET_ACCESS_KEY: swift.secretAccessKey, AWS_DEFAULT_REGION: swift.region };
}

export function dvfsRemoteUrl(swift: SwiftServer, bucket: string): string {
  return `s3://${bucket}?endpoint=${encodeURIComponent(swift.endpoint)}&region=${swift.region}`;
}
