/** The daemon's control socket: a Unix socket (mode 0600) answering status / flush / unmount. */
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { CtlBusyError, MAX_LINE, parseRequest, type CtlOp, type CtlReply, type CtlRequest } from './protocol.js';

export type CtlHandlers = Record<CtlOp, (request: CtlRequest) => Promise<Record<string, unknown>>>;

export interface CtlServer {
  close(): Promise<void>;
}

function serve(socket: Socket, handlers: CtlHandlers): void {
  let buffered = '';
  const reply = (r: CtlReply): void => {
    if (!socket.destroyed) socket.write(JSON.stringify(r) + '\n');
  };
  socket.setEncoding('utf8');
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    if (buffered.length > MAX_LINE && !buffered.includes('\n')) {
      reply({ ok: false, error: `request longer than ${MAX_LINE} bytes` });
      socket.destroy();
      return;
    }
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line === '') continue;
      const req = parseRequest(line);
      if ('error' in req) {
        reply({ ok: false, error: req.error });
        continue;
      }
      handlers[req.op](req).then(
        (result) => reply({ ...result, ok: true }),
        (e: unknown) => reply({ ok: false, error: e instanceof Error ? e.message : String(e), ...(e instanceof CtlBusyError ? { busy: true } : {}) }),
      );
    }
  });
}

export function startCtlServer(path: string, handlers: CtlHandlers): Promise<CtlServer> {
  rmSync(path, { force: true });
  const server: Server = createServer((socket) => serve(socket, handlers));
  return new Promise((resolve, reject) => {
    const oldMask = process.umask(0o177);
    server.once('error', (e) => {
      process.umask(oldMask);
      reject(e);
    });
    server.listen(path, () => {
      process.umask(oldMask);
      chmodSync(path, 0o600);
      resolve({
        close: () =>
          new Promise<void>((res) => {
            server.close(() => res());
            rmSync(path, { force: true });
          }),
      });
    });
  });
}
