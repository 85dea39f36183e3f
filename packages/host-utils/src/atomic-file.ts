import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Writes `data` to `path` so that a reader (or a crash at any instant) sees either the old content or the new,
 * never a mix: temp file in the same directory, fsync, rename, fsync the directory. The temp file is named so
 * that `isTempFile` recognises one left by a writer that died between create and rename. The new file gets exactly
 * `mode`, whatever the umask.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    // open's mode is masked by the umask; the file must end up with the mode the caller chose.
    await handle.chmod(mode);
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await fs.rm(tmp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await fs.rename(tmp, path);
  } catch (error) {
    await fs.rm(tmp, { force: true });
    throw error;
  }
  await syncDirectory(dir);
}

/** fsync a directory so a rename or create in it survives a power loss. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** True for the name of a temp file `writeFileAtomic` left behind (its writer died between create and rename). */
export function isTempFile(name: string): boolean {
  return /^\.[0-9a-f]{12}\.tmp$/.test(name);
}
