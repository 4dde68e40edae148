/**
 * @aws-sdk/client-s3, loaded with require().
 *
 * The SDK ships CommonJS (its package's "main"). An ESM `import` of it makes Node scan each of its CommonJS
 * modules for export names (cjs-module-lexer) before running them; require() skips that scan. Measured here
 * (Node 20, 2 cores): loading the SDK and building a client took 130-160 ms of CPU through `import`, 90-125 ms
 * through require — paid by every process that talks S3 (push, pull, clone, fetch, verify --remote).
 * Types still come from the package's own declarations.
 */
import { createRequire } from 'node:module';

export type S3Sdk = typeof import('@aws-sdk/client-s3');

const requireCommonJs = createRequire(import.meta.url);

export const s3: S3Sdk = requireCommonJs('@aws-sdk/client-s3') as S3Sdk;
