/**
 * Opens the backend a remote URL names, wrapped in RetryingBackend. The S3 client (a large module tree) is
 * loaded only for s3:// URLs.
 */
import { DEFAULT_RETRY, RetryingBackend, type Backend, type RetryPolicy } from './backend.js';
import { FileBackend, type FileBackendOptions } from './file-backend.js';
import type { S3BackendOptions } from './s3-backend.js';
import { parseRemoteUrl, type RemoteUrl } from './url.js';

export interface OpenBackendOptions {
  retry?: RetryPolicy;
  file?: FileBackendOptions;
  s3?: Partial<S3BackendOptions>;
}

export async function openBackend(url: string | RemoteUrl, options: OpenBackendOptions = {}): Promise<RetryingBackend> {
  const parsed = typeof url === 'string' ? parseRemoteUrl(url) : url;
  const retry = options.retry ?? DEFAULT_RETRY;
  let inner: Backend;
  if (parsed.scheme === 'file') {
    inner = new FileBackend(parsed.path, options.file);
  } else {
    const { S3Backend } = await import('./s3-backend.js');
    inner = await S3Backend.open(parsed, { partRetry: retry, ...options.s3 });
  }
  return new RetryingBackend(inner, retry);
}
