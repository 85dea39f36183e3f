import { once } from 'node:events';
import { type FileHandle, open } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import { followFile } from '@my-hypervisor/host-utils';
import { type VmManager, VmManagerError } from '@my-hypervisor/vm-manager';
import { openManager } from '../backends.js';
import { invalidValue, usageError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { listenForInterrupt } from '../interrupt.js';
import type { CommandHandler } from '../run.js';
import { parseVmName } from '../vm-name.js';

/** Bytes per read: what the command holds of a log at a time (plus, with --json, the lines it reports). */
const CHUNK_BYTES = 64 * 1024;
/** How often `--follow` checks that the VM still exists. */
const REMOVAL_POLL_MS = 500;
const NEWLINE = 0x0a;

async function openIfExists(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Where the last `count` lines of the file's first `end` bytes start (`tail -n`), read backwards in blocks so a
 * huge log costs only its tail. A final line break ends the last line rather than starting another. The offset is
 * 0 or just after a line break, so never inside a UTF-8 character.
 */
async function lastLinesStart(file: FileHandle, end: number, count: number): Promise<number> {
  if (count === 0) return end;
  const block = Buffer.alloc(CHUNK_BYTES);
  let found = 0;
  for (let to = end; to > 0; ) {
    const from = Math.max(0, to - CHUNK_BYTES);
    const { bytesRead } = await file.read(block, 0, to - from, from);
    if (bytesRead < to - from) return 0; // truncated meanwhile: whatever is left is printed from its start
    for (let i = block.lastIndexOf(NEWLINE, to - from - 1); i >= 0; i = block.lastIndexOf(NEWLINE, i - 1)) {
      if (from + i !== end - 1 && ++found === count) return from + i + 1;
      if (i === 0) break;
    }
    to = from;
  }
  return 0;
}

/** The file's bytes in [start, end), one reused chunk at a time (use each before asking for the next). */
async function* readRange(file: FileHandle, start: number, end: number): AsyncGenerator<Buffer> {
  const buffer = Buffer.alloc(CHUNK_BYTES);
  for (let position = start; position < end; ) {
    const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, end - position), position);
    if (bytesRead === 0) return; // truncated meanwhile
    position += bytesRead;
    yield buffer.subarray(0, bytesRead);
  }
}

/** Resolves once the VM is gone: no record, or a record of another VM under the same name (not our log). */
async function vmRemoved(manager: VmManager, name: string, id: string, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    try {
      if ((await manager.get(name)).id !== id) return;
    } catch (error) {
      if (VmManagerError.isInstance(error) && error.code === 'NOT_FOUND') return;
      // Anything else (a state file being repaired by hand?) is not proof of removal: look again later.
    }
    await sleep(REMOVAL_POLL_MS, undefined, { signal }).catch(() => undefined);
  }
}

/**
 * `myhv vm logs NAME [--vmm] [-n N] [-f]`: the serial console log (or the VMM's), optionally followed. The log is
 * streamed in chunks (with -n only its tail is read), decoded by one StringDecoder from the first read to the last
 * so a UTF-8 character split between reads prints whole. `--follow` ends on Ctrl-C (exit 130) or, with a note on
 * stderr and exit 0, once the VM is removed.
 */
export const vmLogs: CommandHandler = async (ctx, [rawName]) => {
  const name = parseVmName(rawName);
  const { options, out } = ctx;
  if (options.follow && out.json)
    throw usageError('--follow cannot be combined with --json', 'drop one of them');
  let tail: number | undefined;
  if (options.tail !== undefined) {
    const text = String(options.tail);
    if (!/^\d{1,7}$/.test(text))
      throw invalidValue('--tail', `${JSON.stringify(text)} is not a number of lines`, 'e.g. -n 50');
    tail = Number(text);
  }
  const config = await ctx.config();
  const { manager } = await openManager(config, { kind: 'read' });
  const info = await manager.get(name);
  const log = options.vmm ? 'vmm' : 'serial';
  const path = log === 'vmm' ? info.paths.vmmLog : info.paths.serialLog;

  const decoder = new StringDecoder('utf8');
  // People get the text as it is, written as it is read (with backpressure); JSON gets it as lines.
  const lines: string[] = [];
  let partial = '';
  let endsLine = true;
  const emit = async (text: string): Promise<void> => {
    if (text === '') return;
    if (out.json) {
      const parts = (partial + text).split('\n');
      partial = parts.pop() ?? '';
      lines.push(...parts);
      return;
    }
    endsLine = text.endsWith('\n');
    if (!ctx.io.stdout.write(text)) await once(ctx.io.stdout, 'drain');
  };
  const finish = async (): Promise<void> => {
    await emit(decoder.end());
    if (!endsLine) await emit('\n');
  };

  // Followed from where the first read stopped: the file's size then, not the length of the decoded text.
  let shown = 0;
  const file = await openIfExists(path);
  if (file) {
    try {
      shown = (await file.stat()).size;
      const start = tail === undefined ? 0 : await lastLinesStart(file, shown, tail);
      for await (const chunk of readRange(file, start, shown)) await emit(decoder.write(chunk));
    } finally {
      await file.close();
    }
  }
  if (out.json) {
    await emit(decoder.end());
    if (partial !== '') lines.push(partial);
    out.emitJson({ vm: name, log, path, lines });
    return ExitCode.OK;
  }
  if (!options.follow) {
    await finish();
    return ExitCode.OK;
  }

  // Follow until Ctrl-C or the VM is removed; followFile also polls, because fs.watch misses writes on some
  // filesystems, and reads what was written up to the removal before it ends.
  using interrupt = listenForInterrupt(ctx.io);
  const stopWatching = new AbortController();
  const removed = vmRemoved(manager, name, info.id, AbortSignal.any([interrupt.signal, stopWatching.signal]));
  try {
    const feed = followFile(path, { signal: interrupt.signal, until: removed, pollMs: 250, start: shown });
    for await (const chunk of feed) await emit(decoder.write(chunk));
  } finally {
    stopWatching.abort();
  }
  await finish();
  if (interrupt.signal.aborted) return ExitCode.INTERRUPTED;
  out.note(`${name} was removed; stopped following its log`);
  return ExitCode.OK;
};
