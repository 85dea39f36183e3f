import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { invalidArgument, shareSocketPath } from '@my-hypervisor/storage';

/** The files one share owns in the run directory, plus the lock file the C virtiofsd keeps for its socket. */
export interface SharePaths {
  readonly socketPath: string;
  readonly pidFile: string;
  readonly logFile: string;
  /**
   * The C build locks `/var/run/virtiofsd/<socket path with / as .>.pid` and never removes it; it is named after our
   * socket, so we remove it once the daemon is gone rather than let one file pile up per socket path.
   */
  readonly daemonLockFile: string;
}

/** Where the C virtiofsd (QEMU, localstatedir /var) keeps its per-socket lock files. */
export const C_VIRTIOFSD_LOCK_DIR = '/var/run/virtiofsd';

/** `<runDir>/<id>.sock|.pid|.log`; INVALID_ARGUMENT (`id`) when the socket path would not fit in sun_path. */
export function sharePaths(runDir: string, id: string): SharePaths {
  const socketPath = shareSocketPath(runDir, id);
  return {
    socketPath,
    pidFile: join(runDir, `${id}.pid`),
    logFile: join(runDir, `${id}.log`),
    daemonLockFile: join(C_VIRTIOFSD_LOCK_DIR, `${socketPath.replaceAll('/', '.')}.pid`),
  };
}

/**
 * Creates `runDir` (mode 0700) if missing; an existing one must be a directory owned by us and not writable by
 * group or others, since whoever can write there can replace our sockets. INVALID_ARGUMENT (`runDir`) otherwise.
 */
export async function ensureRunDir(runDir: string): Promise<void> {
  try {
    await mkdir(runDir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw invalidArgument('runDir', `cannot create ${JSON.stringify(runDir)}`, error);
  }
  const info = await stat(runDir).catch((error: unknown) => {
    throw invalidArgument('runDir', `cannot read ${JSON.stringify(runDir)}`, error);
  });
  if (!info.isDirectory()) throw invalidArgument('runDir', `${JSON.stringify(runDir)} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid) {
    throw invalidArgument(
      'runDir',
      `${JSON.stringify(runDir)} is owned by uid ${info.uid}, not by us (${uid})`,
    );
  }
  if ((info.mode & 0o022) !== 0) {
    throw invalidArgument(
      'runDir',
      `${JSON.stringify(runDir)} is writable by group or others (mode ${(info.mode & 0o777).toString(8)}); chmod 700 it`,
    );
  }
}
