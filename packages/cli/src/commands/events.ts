import { once } from 'node:events';
import type { JournalEvent } from '@my-hypervisor/vm-manager';
import { openManager } from '../backends.js';
import { invalidValue } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { listenForInterrupt } from '../interrupt.js';
import type { CommandHandler } from '../run.js';
import { parseVmName } from '../vm-name.js';

const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A `--since`/`--until` value as docker reads it: an ISO date or time (`2026-12-06`, `2026-12-06T10:00:00Z`), Unix
 * seconds (`1765000000`), or a duration before `now` (`10m`, `1h30m`, `2d`).
 */
export function parseTimeArg(field: string, raw: unknown, now = Date.now()): Date {
  const text = String(raw).trim();
  if (/^\d+(\.\d+)?$/.test(text)) return new Date(Number(text) * 1000);
  if (/^(\d+[smhd])+$/.test(text)) {
    let ms = 0;
    for (const [, n, unit] of text.matchAll(/(\d+)([smhd])/g)) ms += Number(n) * UNIT_MS[unit!]!;
    return new Date(now - ms);
  }
  const date = /^\d{4}-\d{2}-\d{2}/.test(text) ? new Date(text) : new Date(Number.NaN);
  if (Number.isNaN(date.getTime()))
    throw invalidValue(
      field,
      `${JSON.stringify(text)} is not a time`,
      'give an ISO time (2026-12-06T10:00:00Z), Unix seconds, or a duration before now (10m, 1h30m, 2d)',
    );
  return date;
}

/**
 * One event for people: `TIME VM OP STEP PHASE (ms)`, `TIME VM status STATUS`, or a VMM's own event as
 * `TIME VM vmm SOURCE EVENT key=value…`.
 */
export function formatEvent(e: JournalEvent): string {
  if (e.type === 'status') return `${e.time} ${e.vm} status ${e.status}`;
  if (e.type === 'vmm') {
    const properties = Object.entries(e.properties ?? {}).map(([key, value]) => ` ${key}=${value}`);
    return `${e.time} ${e.vm} vmm ${e.source} ${e.event}${properties.join('')}`;
  }
  const ms = e.ms === undefined ? '' : ` (${Math.round(e.ms)} ms)`;
  const error = e.error === undefined ? '' : `: ${e.error}`;
  return `${e.time} ${e.vm} ${e.op} ${e.step} ${e.phase}${ms}${error}`;
}

/**
 * `myhv events [--vm NAME] [--since T] [--until T] [-f]`: lifecycle events of every myhv process on this host, from
 * the journal, oldest first; `-f` then follows new ones until Ctrl-C (exit 130) or `--until` passes. `--json`
 * prints NDJSON, one event a line, so it can stream.
 */
export const events: CommandHandler = async (ctx) => {
  const { options, out } = ctx;
  const vm = options.vm === undefined ? undefined : parseVmName(options.vm, '--vm');
  const since = options.since === undefined ? undefined : parseTimeArg('--since', options.since);
  const until = options.until === undefined ? undefined : parseTimeArg('--until', options.until);
  const follow = options.follow === true;
  const config = await ctx.config();
  const { manager } = await openManager(config, { kind: 'read' });

  using interrupt = listenForInterrupt(ctx.io);
  const feed = manager.journal({
    ...(vm === undefined ? {} : { vm }),
    ...(since ? { since } : {}),
    ...(until ? { until } : {}),
    follow,
    signal: interrupt.signal,
  });
  for await (const event of feed) {
    if (out.json) {
      if (!ctx.io.stdout.write(`${JSON.stringify(event)}\n`)) await once(ctx.io.stdout, 'drain');
    } else {
      out.print(formatEvent(event));
    }
  }
  return interrupt.received ? ExitCode.INTERRUPTED : ExitCode.OK;
};
