import { lstat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { ChvApiError, invalidArgument } from './errors.js';

/** sun_path holds 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

/** Returns `socketPath` if a Unix socket can be bound there; INVALID_ARGUMENT otherwise, before anything starts. */
export function validateSocketPath(socketPath: unknown, field = 'socketPath'): string {
  if (typeof socketPath !== 'string' || socketPath === '')
    throw invalidArgument(field, 'must be a non-empty string');
  if (socketPath.includes('\0')) throw invalidArgument(field, 'must not contain NUL');
  const bytes = Buffer.byteLength(socketPath);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw invalidArgument(
      field,
      `${JSON.stringify(socketPath)} is ${bytes} bytes; a Unix socket path is at most ${MAX_SOCKET_PATH_BYTES} (108 with the NUL): use a shorter run directory`,
    );
  }
  return socketPath;
}

/**
 * Removes a socket file left by a VMM that died (before v53 the VMM refuses to start on one). Only a socket is
 * removed, and only when nothing answers on it: a live VMM's socket is a CONFLICT, anything else INVALID_ARGUMENT.
 */
export async function removeStaleSocket(socketPath: string): Promise<boolean> {
  const stat = await lstat(socketPath).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (!stat) return false;
  if (!stat.isSocket()) {
    throw invalidArgument('socketPath', `${socketPath} exists and is not a socket; refusing to remove it`);
  }
  if (await socketAnswers(socketPath)) {
    throw new ChvApiError(
      'CONFLICT',
      `a process is listening on ${socketPath}: another VMM uses this socket`,
    );
  }
  await unlink(socketPath).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
  return true;
}

/** True when something accepts connections on the Unix socket at `socketPath` (the connection is closed at once). */
export function socketAnswers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
