import { open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isProcessAlive, processStartTime } from '@my-hypervisor/host-utils';
import { throwIfAborted } from './errors.js';

/** How often a build waiting for another one of the same image looks again. */
const POLL_MS = 100;
/** A lock file with no owner written into it is left by a build that died right after making it. */
const UNOWNED_STALE_MS = 5_000;

/** Who holds a build lock, as its file says: `<pid> <start time>`. */
function parseOwner(text: string): { pid: number; startTime: number | undefined } | undefined {
  const match = /^(\d+)(?: (\d+))?\n?$/.exec(text);
  if (!match) return undefined;
  return { pid: Number(match[1]), startTime: match[2] === undefined ? undefined : Number(match[2]) };
}

/**
 * Runs `fn` holding the build lock of image `name` in the store (`.build-<name>.lock`, made with O_EXCL): one
 * build of an image at a time on the host, so a second `image build` waits and then finds the image up to date
 * instead of racing the first one's rename. A lock whose process is gone (a crashed build) is taken over.
 * `onWait` is called once, when the lock is held by another live build.
 */
export async function withBuildLock<T>(
  storeDir: string,
  name: string,
  options: { signal?: AbortSignal | undefined; onWait?: (holder: number) => void },
  fn: () => Promise<T>,
): Promise<T> {
  const path = join(storeDir, `.build-${name}.lock`);
  const startTime = processStartTime(process.pid);
  let told = false;
  for (;;) {
    throwIfAborted(options.signal);
    try {
      const handle = await open(path, 'wx', 0o600);
      try {
        await handle.writeFile(`${process.pid}${startTime === undefined ? '' : ` ${startTime}`}\n`);
      } finally {
        await handle.close();
      }
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const text = await readFile(path, 'utf8').catch(() => undefined);
    if (text === undefined) continue; // released meanwhile
    const owner = parseOwner(text);
    // A dead owner's lock is taken over; one without an owner (its writer died between open and write) once it is
    // old. Read again right before removing it: another waiter may have taken it over meanwhile.
    const stale = owner
      ? !isProcessAlive(owner.pid, owner.startTime)
      : Date.now() - ((await stat(path).catch(() => undefined))?.mtimeMs ?? 0) > UNOWNED_STALE_MS;
    if (stale) {
      if ((await readFile(path, 'utf8').catch(() => undefined)) === text) await rm(path, { force: true });
      continue;
    }
    if (owner && !told) {
      told = true;
      options.onWait?.(owner.pid);
    }
    await sleep(POLL_MS, undefined, options.signal ? { signal: options.signal } : {}).catch(() => undefined);
  }
  try {
    return await fn();
  } finally {
    await rm(path, { force: true });
  }
}
