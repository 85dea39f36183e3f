import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '@my-hypervisor/host-utils';

/** What a pid file holds: the pid on line 1 (as `kill $(head -1 f)` expects), the share record as JSON on line 2. */
export interface PidFileContent {
  readonly pid?: number;
  /** The parsed JSON of line 2, unvalidated; undefined when missing or not JSON. */
  readonly record?: unknown;
}

/** Writes the pid file atomically (and durably), so a reader or a crash never sees half of it. */
export async function writePidFile(path: string, pid: number, record: unknown): Promise<void> {
  await writeFileAtomic(path, `${pid}\n${JSON.stringify(record)}\n`, 0o600);
}

export function parsePidFile(text: string): PidFileContent {
  const [first = '', second = ''] = text.split('\n');
  const pid = /^\d+$/.test(first.trim()) ? Number(first.trim()) : undefined;
  let record: unknown;
  try {
    record = second.trim() ? JSON.parse(second) : undefined;
  } catch {
    record = undefined;
  }
  return { ...(pid !== undefined && pid > 0 ? { pid } : {}), ...(record !== undefined ? { record } : {}) };
}

/** The pid file's content, or undefined when it does not exist. */
export async function readPidFile(path: string): Promise<PidFileContent | undefined> {
  try {
    return parsePidFile(await readFile(path, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
