import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';
import {
  abortError,
  StorageError,
  type StorageOperationOptions,
  throwIfAborted,
} from '@my-hypervisor/storage';
import { execa } from 'execa';
import { parseVirtiofsdInfo, type VirtiofsdInfo } from './virtiofsd-info.js';

/** Where Debian/Ubuntu put the C build (package qemu-system-common). */
export const C_VIRTIOFSD_PATH = '/usr/lib/qemu/virtiofsd';
/** Where distributions packaging the Rust build put it when it is not on PATH. */
export const LIBEXEC_VIRTIOFSD_PATH = '/usr/libexec/virtiofsd';
/** What BINARY_MISSING tells the user to run: Debian/Ubuntu ship the C virtiofsd in qemu-system-common. */
export const INSTALL_HINT = 'apt-get install --no-install-recommends qemu-system-common';

const probeTimeoutMs = 5_000;

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** The places searched, in order, when no binary is given: `virtiofsd` on PATH, /usr/libexec, then the C build. */
export function virtiofsdCandidates(pathEnv: string | undefined = process.env.PATH): string[] {
  const onPath = (pathEnv ?? '')
    .split(delimiter)
    .filter((dir) => isAbsolute(dir))
    .map((dir) => join(dir, 'virtiofsd'));
  return [...new Set([...onPath, LIBEXEC_VIRTIOFSD_PATH, C_VIRTIOFSD_PATH])];
}

function binaryMissing(message: string, cause?: unknown): StorageError {
  return new StorageError('BINARY_MISSING', `${message}; install it with: ${INSTALL_HINT}`, {
    cause,
    details: { field: 'binary' },
  });
}

/**
 * The virtiofsd to run: `binary` when given (an absolute path, or a name looked up on PATH), else the first
 * executable candidate. BINARY_MISSING names the package to install.
 */
export async function findVirtiofsd(binary?: string, pathEnv?: string): Promise<string> {
  if (binary !== undefined) {
    const candidates = binary.includes('/')
      ? [binary]
      : virtiofsdCandidates(pathEnv).map((c) => c.replace(/virtiofsd$/, binary));
    for (const candidate of candidates) {
      if (isAbsolute(candidate) && (await isExecutableFile(candidate))) return candidate;
    }
    throw binaryMissing(`virtiofsd binary ${JSON.stringify(binary)} is missing or not executable`);
  }
  for (const candidate of virtiofsdCandidates(pathEnv)) {
    if (await isExecutableFile(candidate)) return candidate;
  }
  throw binaryMissing('virtiofsd was not found on PATH, in /usr/libexec or in /usr/lib/qemu');
}

/**
 * Finds virtiofsd and tells its flavour by running `--version` and `--help` (argv arrays, never a shell).
 * BINARY_MISSING when it is absent or does not look like virtiofsd.
 */
export async function detectVirtiofsd(
  binary?: string,
  options: StorageOperationOptions = {},
): Promise<VirtiofsdInfo> {
  const { signal } = options;
  throwIfAborted(signal);
  const path = await findVirtiofsd(binary);
  const run = (flag: string) =>
    execa(path, [flag], {
      all: true,
      reject: false,
      stdin: 'ignore',
      timeout: probeTimeoutMs,
      ...(signal ? { cancelSignal: signal } : {}),
    });
  const [version, help] = await Promise.all([run('--version'), run('--help')]);
  if (signal?.aborted) throw abortError(signal);
  const info = parseVirtiofsdInfo(path, version.all ?? '', help.all ?? '');
  if (!info) {
    throw binaryMissing(
      `${path} does not look like virtiofsd (its --help names neither --shared-dir nor -o source)`,
      help,
    );
  }
  return info;
}
