import { readFile } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { followFile } from '@my-hypervisor/host-utils';
import { openManager } from '../backends.js';
import { invalidValue, usageError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { listenForInterrupt } from '../interrupt.js';
import type { CommandHandler } from '../run.js';
import { parseVmName } from '../vm-name.js';

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw error;
  }
}

/** `myhv vm logs NAME [--vmm] [-n N] [-F]`: the serial console log (or the VMM's), optionally followed. */
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
  const text = await readText(path);
  let lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  if (tail !== undefined) lines = tail === 0 ? [] : lines.slice(-tail);
  out.result({ vm: name, log, path, lines }, () => out.printLines(lines));
  if (!options.follow) return ExitCode.OK;

  // Follow until Ctrl-C; followFile also polls, because fs.watch misses writes on some filesystems.
  using interrupt = listenForInterrupt(ctx.io);
  const decoder = new StringDecoder('utf8');
  let pending = '';
  const start = Buffer.byteLength(text);
  for await (const chunk of followFile(path, { signal: interrupt.signal, pollMs: 250, start })) {
    const parts = (pending + decoder.write(chunk)).split('\n');
    pending = parts.pop() ?? '';
    out.printLines(parts);
  }
  if (pending) out.print(pending);
  return ExitCode.INTERRUPTED;
};
