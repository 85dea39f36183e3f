import { join } from 'node:path';
import { invalidArgument } from './errors.js';

/**
 * sun_path holds 108 bytes including the terminating NUL, and the C virtiofsd rejects a path that fills it, so a
 * share's socket path may have at most 107 bytes.
 */
export const MAX_SOCKET_PATH_BYTES = 107;

/** `<runDir>/<id>.sock`; INVALID_ARGUMENT (`id`) when the path would not fit in sun_path. */
export function shareSocketPath(runDir: string, id: string): string {
  const socketPath = join(runDir, `${id}.sock`);
  const bytes = Buffer.byteLength(socketPath);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw invalidArgument(
      'id',
      `socket path ${JSON.stringify(socketPath)} is ${bytes} bytes; the limit is ${MAX_SOCKET_PATH_BYTES}: use a shorter runDir or id`,
    );
  }
  return socketPath;
}
