import { setTimeout as sleep } from 'node:timers/promises';
import { type ProcessStats, VmManagerError, type VmStats } from '@my-hypervisor/vm-manager';
import { openManager } from '../backends.js';
import type { CommandContext } from '../context.js';
import { invalidValue } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { listenForInterrupt } from '../interrupt.js';
import type { CommandHandler } from '../run.js';
import { parseVmName } from '../vm-name.js';

/** Per-second rates between two snapshots. */
export interface VmRates {
  /** Seconds between the two snapshots. */
  readonly seconds: number;
  /** Device → counter → per second, for the cumulative counters (`*_bytes`, `*_frames`, `*_ops`). */
  readonly counters: Record<string, Record<string, number>>;
  /** CPU use of the VMM process, 100 = one host CPU. */
  readonly vmm: { readonly cpuPercent: number };
  readonly shares: { readonly tag: string; readonly cpuPercent: number | null }[];
}

/** Latencies (min, max, avg) are levels, not totals: a rate of them means nothing. */
const CUMULATIVE = /_(bytes|frames|ops)$/;

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

function cpuPercent(prev: ProcessStats | undefined, cur: ProcessStats | undefined, seconds: number) {
  if (!prev || !cur || prev.pid !== cur.pid || seconds <= 0) return null;
  return round(((cur.cpuSeconds - prev.cpuSeconds) / seconds) * 100, 1);
}

export function statsRates(prev: VmStats, cur: VmStats): VmRates {
  const seconds = Math.max(0.001, (Date.parse(cur.at) - Date.parse(prev.at)) / 1000);
  const counters: Record<string, Record<string, number>> = {};
  for (const [device, values] of Object.entries(cur.counters)) {
    const before = prev.counters[device];
    if (!before) continue;
    const rates: Record<string, number> = {};
    for (const [counter, value] of Object.entries(values)) {
      const old = before[counter];
      // A counter that went down belongs to a restarted device: no rate for this interval.
      if (CUMULATIVE.test(counter) && old !== undefined && value >= old) {
        rates[counter] = round((value - old) / seconds);
      }
    }
    counters[device] = rates;
  }
  return {
    seconds: round(seconds, 3),
    counters,
    vmm: { cpuPercent: cpuPercent(prev.vmm, cur.vmm, seconds) ?? 0 },
    shares: cur.shares.map((s) => ({
      tag: s.tag,
      cpuPercent: cpuPercent(prev.shares.find((p) => p.tag === s.tag)?.process, s.process, seconds),
    })),
  };
}

function parseInterval(value: unknown): number {
  const text = String(value);
  if (!/^\d{1,4}(\.\d{1,3})?$/.test(text) || Number(text) < 0.1 || Number(text) > 3600) {
    throw invalidValue(
      '--interval',
      `${JSON.stringify(text)} is not a number of seconds from 0.1 to 3600`,
      'e.g. --interval 2',
    );
  }
  return Math.round(Number(text) * 1000);
}

const MiB = 1024 * 1024;
const bytesText = (n: number) =>
  n >= 1024 * MiB ? `${(n / 1024 / MiB).toFixed(2)}G` : `${(n / MiB).toFixed(1)}M`;

function processRows(stats: VmStats): string[][] {
  const row = (what: string, p: ProcessStats | undefined) =>
    p
      ? [what, String(p.pid), `${p.cpuSeconds.toFixed(2)}s`, bytesText(p.rssBytes), String(p.threads)]
      : [what, '-', '-', '-', '-'];
  return [row('vmm', stats.vmm), ...stats.shares.map((s) => row(`virtiofsd ${s.tag}`, s.process))];
}

function printSnapshot(ctx: CommandContext, stats: VmStats): void {
  ctx.out.print(`${stats.vm} (${stats.status}) at ${stats.at}`);
  ctx.out.table(['process', 'pid', 'cpu', 'rss', 'threads'], processRows(stats));
  const counters = Object.entries(stats.counters).flatMap(([device, values]) =>
    Object.entries(values).map(([counter, value]) => [device, counter, String(value)]),
  );
  if (counters.length > 0) {
    ctx.out.print();
    ctx.out.table(['device', 'counter', 'value'], counters);
  }
  if (stats.network) {
    ctx.out.print();
    ctx.out.print(`network policy: ${deniedText(stats.network)}`);
  }
  if (stats.cgroup) {
    ctx.out.print();
    ctx.out.print(`cgroup ${stats.cgroup.path}: ${cgroupText(stats.cgroup)}`);
  }
}

/** Usage against limits; "no limit" where none is enforced, "?" where the host does not account it. */
function cgroupText(cgroup: NonNullable<VmStats['cgroup']>): string {
  const of = (used: string | undefined, limit: string | undefined) =>
    `${used ?? '?'} of ${limit ?? 'no limit'}`;
  return [
    `memory ${of(cgroup.memoryBytes === undefined ? undefined : bytesText(cgroup.memoryBytes), cgroup.memoryLimitBytes === undefined ? undefined : bytesText(cgroup.memoryLimitBytes))}`,
    `cpu ${cgroup.cpuSeconds === undefined ? '?' : `${cgroup.cpuSeconds.toFixed(2)}s`} (limit ${cgroup.cpus === undefined ? 'none' : `${cgroup.cpus} cpus`})`,
    `pids ${of(cgroup.pids === undefined ? undefined : String(cgroup.pids), cgroup.pidsLimit === undefined ? undefined : String(cgroup.pidsLimit))}`,
  ].join(', ');
}

/** Totals since the VM's network was attached (not rates: a denied packet is an event worth seeing once). */
function deniedText(network: NonNullable<VmStats['network']>): string {
  return `${network.egressDenied} egress denied, ${network.isolationDenied} isolation denied (packets)`;
}

function printRates(ctx: CommandContext, stats: VmStats, rates: VmRates): void {
  const time = stats.at.slice(11, 19);
  const parts = [`vmm cpu ${rates.vmm.cpuPercent}% rss ${bytesText(stats.vmm.rssBytes)}`];
  for (const share of rates.shares) {
    const rss = stats.shares.find((s) => s.tag === share.tag)?.process?.rssBytes;
    parts.push(
      `virtiofsd ${share.tag} cpu ${share.cpuPercent ?? '-'}% rss ${rss === undefined ? '-' : bytesText(rss)}`,
    );
  }
  for (const [device, values] of Object.entries(rates.counters)) {
    const text = Object.entries(values)
      .map(([counter, value]) => `${counter} ${value}/s`)
      .join(' ');
    parts.push(`${device} ${text}`);
  }
  if (stats.network) parts.push(`policy ${deniedText(stats.network)}`);
  ctx.out.print(`${time}  ${parts.join('  |  ')}`);
}

async function stillRunning(
  manager: { get(name: string): Promise<{ id: string; status: string; vmmAlive: boolean }> },
  name: string,
  id: string,
): Promise<boolean> {
  const vm = await manager.get(name).catch(() => undefined);
  return (
    vm !== undefined && vm.id === id && vm.vmmAlive && (vm.status === 'running' || vm.status === 'paused')
  );
}

/** `stillRunning`, asked again every 100 ms for up to `ms` while it says yes. */
async function stillRunningAfter(
  manager: Parameters<typeof stillRunning>[0],
  name: string,
  id: string,
  ms: number,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (!(await stillRunning(manager, name, id))) return false;
    if (Date.now() >= deadline) return true;
    await sleep(100);
  }
}

const gone = (error: unknown) =>
  VmManagerError.isInstance(error) && (error.code === 'WRONG_STATE' || error.code === 'NOT_FOUND');

/**
 * `myhv vm stats NAME [--watch] [--interval S]`: device counters and the CPU time and RSS of the VMM and each
 * virtiofsd. `--watch` prints per-second rates every interval until Ctrl-C (exit 130) or the VM stops (exit 0);
 * with `--json` each snapshot is one line (NDJSON), not one document.
 */
export const vmStats: CommandHandler = async (ctx, [rawName]) => {
  const name = parseVmName(rawName);
  const { options, out } = ctx;
  const intervalMs = parseInterval(options.interval ?? '2');
  const config = await ctx.config();
  // The namespace backend counts what each VM's policy dropped: ask it too (nothing else is built).
  const parts = await openManager(config, { kind: 'counters' });
  ctx.defer(parts.close);
  const { manager } = parts;
  const first = await manager.stats(name);
  if (!options.watch) {
    out.result({ stats: first, rates: null }, () => printSnapshot(ctx, first));
    return ExitCode.OK;
  }
  // NDJSON: one compact line per snapshot, whatever the terminal, so `jq` and readers can stream it.
  const line = (value: unknown) => ctx.io.stdout.write(`${JSON.stringify(value)}\n`);
  if (out.json) line({ stats: first, rates: null });
  else printSnapshot(ctx, first);
  using interrupt = listenForInterrupt(ctx.io);
  let previous = first;
  while (!interrupt.signal.aborted) {
    const slept = await sleep(intervalMs, true, { signal: interrupt.signal }).catch(() => false);
    if (!slept) break;
    let current: VmStats;
    try {
      current = await manager.stats(name, { signal: interrupt.signal });
    } catch (error) {
      if (interrupt.signal.aborted) break;
      // A VM stopping mid-sample fails the counters call itself (its VMM went away under it): ask the record,
      // a little while, since `vm stop` writes it only once the VMM has exited.
      if (gone(error) || !(await stillRunningAfter(manager, name, first.id, 2_000))) {
        out.note(`${name} stopped; stopped watching`);
        return ExitCode.OK;
      }
      throw error;
    }
    if (current.id !== first.id) {
      out.note(`${name} was replaced by another VM of that name; stopped watching`);
      return ExitCode.OK;
    }
    const rates = statsRates(previous, current);
    if (out.json) line({ stats: current, rates });
    else printRates(ctx, current, rates);
    previous = current;
  }
  return ExitCode.INTERRUPTED;
};
