import { chmod, chown, lstat, mkdtemp, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { createConnection, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { JsonRpcError } from './errors.js';

/** Linux `sun_path` holds 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

/** The identity of a socket file, to tell ours from a successor's when removing it. */
export interface SocketFile {
  readonly dev: number;
  readonly ino: number;
}

/** INVALID_ARGUMENT naming `field` when `socketPath` cannot be a Unix socket path. */
export function assertSocketPath(socketPath: string, field = 'socketPath'): void {
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new JsonRpcError(
      'INVALID_ARGUMENT',
      `${field}: ${socketPath} is longer than the ${MAX_SOCKET_PATH_BYTES} bytes a Unix socket path may have`,
      { details: { field, socketPath } },
    );
  }
}

/** Refuses to take over a live socket or a file that is not a socket; removes a socket nobody listens on. */
export async function removeStaleSocket(socketPath: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(socketPath)).isSocket();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw listenError(socketPath, error);
  }
  if (!isSocket) {
    throw new JsonRpcError('NOT_A_SOCKET', `${socketPath} exists and is not a socket; not removing it`, {
      details: { socketPath },
    });
  }
  const live = await new Promise<boolean>((resolve) => {
    const probe = createConnection({ path: socketPath });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) {
    throw new JsonRpcError('ADDRESS_IN_USE', `a server is already listening on ${socketPath}`, {
      details: { socketPath },
    });
  }
  await unlink(socketPath).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw listenError(socketPath, error);
  });
}

/**
 * Binds `server` inside a fresh 0700 directory, sets the mode (and group), then renames the socket into place:
 * nobody can connect before the mode is right (a plain listen-then-chmod leaves a window, and umask is
 * process-wide). Only when the temporary path would exceed the socket path limit does it bind in place and chmod
 * right after. On failure the server is closed.
 */
export async function listenPrivately(
  server: Server,
  socketPath: string,
  access: { mode: number; gid?: number | undefined; tempPrefix: string },
): Promise<SocketFile> {
  let privateDir: string | undefined;
  try {
    privateDir = await mkdtemp(join(dirname(socketPath), access.tempPrefix));
    const bindPath = join(privateDir, 's');
    const direct = Buffer.byteLength(bindPath) > MAX_SOCKET_PATH_BYTES;
    const path = direct ? socketPath : bindPath;
    await bind(server, path);
    if (access.gid !== undefined) await chown(path, process.getuid?.() ?? 0, access.gid);
    await chmod(path, access.mode);
    if (!direct) await rename(bindPath, socketPath);
    const stats = await stat(socketPath);
    return { dev: stats.dev, ino: stats.ino };
  } catch (error) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw JsonRpcError.isInstance(error) ? error : listenError(socketPath, error);
  } finally {
    if (privateDir) await rmdir(privateDir).catch(() => undefined);
  }
}

/** Removes the socket file if it is still the one we made (a successor may have replaced it). */
export async function removeOwnSocket(socketPath: string, file: SocketFile | undefined): Promise<void> {
  const stats = await stat(socketPath).catch(() => undefined);
  if (stats && file && stats.dev === file.dev && stats.ino === file.ino) {
    await unlink(socketPath).catch(() => undefined);
  }
}

function bind(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function listenError(socketPath: string, error: unknown): JsonRpcError {
  const errno = (error as NodeJS.ErrnoException).code;
  return new JsonRpcError(
    errno === 'EACCES' || errno === 'EPERM' ? 'PERMISSION_DENIED' : 'LISTEN_FAILED',
    `cannot listen on ${socketPath}: ${(error as Error).message}`,
    { cause: error, details: { socketPath, ...(errno === undefined ? {} : { errno }) } },
  );
}
