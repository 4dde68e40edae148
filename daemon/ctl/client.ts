/** Talking to a mount daemon over its control socket. */
import { connect } from 'node:net';
import { DvfsError } from '../errors.js';
import type { CtlOp, CtlRequest } from './protocol.js';

export function ctlRequest(socketPath: string, op: CtlOp, timeoutMs = 30_000, extra: Omit<CtlRequest, 'op'> = {}): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let buffered = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new DvfsError('E_IO', `the mount daemon did not answer '${op}' within ${timeoutMs / 1000} s`, { path: socketPath }));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify({ ...extra, op }) + '\n'));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.end();
      let reply: Record<string, unknown>;
      try {
        reply = JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>;
      } catch {
        return reject(new DvfsError('E_IO', 'the mount daemon sent a malformed reply', { path: socketPath }));
      }
      if (reply['ok'] !== true) {
        const busy = reply['busy'] === true;
        return reject(new DvfsError(busy ? 'E_BUSY' : 'E_IO', busy ? String(reply['error']) : `the mount daemon refused '${op}': ${String(reply['error'])}`, { path: socketPath }));
      }
      resolve(reply);
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new DvfsError('E_IO', `cannot reach the mount daemon (${e.code ?? e.message})`, { path: socketPath }));
    });
  });
}
