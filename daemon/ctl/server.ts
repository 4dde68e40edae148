/** The daemon's control socket: a Unix socket (mode 0600) answering the ops of protocol.ts. */
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { DvfsError } from '../errors.js';
import { CtlBusyError, MAX_LINE, parseRequest, type CtlOp, type CtlReply, type CtlRequest } from './protocol.js';

export type CtlHandlers = Record<CtlOp, (request: CtlRequest) => Promise<Record<string, unknown>>>;

export interface CtlServer {
  close(): Promise<void>;
}

function errorReply(e: unknown): CtlReply {
  const error = e instanceof Error ? e.message : String(e);
  if (e instanceof CtlBusyError) return { ok: false, error, busy: true };
  if (e instanceof DvfsError) return { ok: false, error, code: e.code, ...(e.path ? { path: e.path } : {}), ...(e.hint ? { hint: e.hint } : {}) };
  return { ok: false, error };
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
        (e: unknown) => reply(errorReply(e)),
      );
    }
  });
}

/** How long connections still open at close may take to say goodbye before they are cut. */
const CLOSE_GRACE_MS = 500;

export function startCtlServer(path: string, handlers: CtlHandlers): Promise<CtlServer> {
  rmSync(path, { force: true });
  // Open connections, so close() can end them: server.close() alone waits for every client to hang up, and a
  // client that never does (or is slow to: a process blocked right after its request) would keep the daemon
  // from exiting after unmount.
  const connections = new Set<Socket>();
  const server: Server = createServer((socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    serve(socket, handlers);
  });
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
            for (const socket of connections) {
              socket.end();
              setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
            }
          }),
      });
    });
  });
}
