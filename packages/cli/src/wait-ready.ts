import { StringDecoder } from 'node:string_decoder';
import { parseReadyLine, type ReadyLine } from '@my-hypervisor/guest-image/core';
import { followFile, isProcessAlive } from '@my-hypervisor/host-utils';
import type { VmInfo } from '@my-hypervisor/vm-manager';
import type { CommandContext } from './context.js';
import { CliError, invalidValue } from './errors.js';
import { listenForInterrupt } from './interrupt.js';

/** Default of `--ready-timeout`. */
export const DEFAULT_READY_TIMEOUT_MS = 60_000;
/** A console line longer than this is no ready line: it is dropped rather than held. */
const MAX_LINE = 4096;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** `--ready-timeout`: `90`, `90s`, `1500ms`, `2m` (at most 24h) → milliseconds; exit 2 naming the flag. */
export function parseReadyTimeout(value: unknown): number {
  const match = /^(\d{1,8})(ms|s|m|h)?$/.exec(String(value).trim());
  const ms = match ? Number(match[1]) * UNIT_MS[match[2] ?? 's']! : Number.NaN;
  if (!(ms > 0 && ms <= 86_400_000)) {
    throw invalidValue(
      '--ready-timeout',
      `${JSON.stringify(String(value))} is not a duration from 1ms to 24h`,
      'e.g. --ready-timeout 60s, 2m or 1500ms',
    );
  }
  return ms;
}

export interface WaitForReadyOptions {
  readonly timeoutMs: number;
  /** Ctrl-C: stop waiting (the VM keeps running). */
  readonly signal?: AbortSignal;
  /** For messages. */
  readonly vm: string;
  /** The VMM's pid (and start time): when it exits first, the wait ends at once with FAILED, not at the timeout. */
  readonly vmm?: { readonly pid: number; readonly startTime?: number };
}

/** How often the VMM is looked at while waiting. */
const VMM_POLL_MS = 250;

/**
 * Follows a VM's serial log until the guest init prints its ready line (`myhv-guest: ready ip=… shares=…`) and
 * returns what it says. A line that starts like one but does not parse is skipped (console output can interleave).
 * Throws CliError TIMEOUT after `timeoutMs`, INTERRUPTED on `signal` (the VM is left alone either way), and FAILED
 * as soon as the VMM (`vmm`) is gone.
 */
export async function waitForReady(serialLog: string, options: WaitForReadyOptions): Promise<ReadyLine> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const vmmGone = new AbortController();
  const vmm = options.vmm;
  const watch = vmm
    ? setInterval(() => {
        if (!isProcessAlive(vmm.pid, vmm.startTime)) vmmGone.abort();
      }, VMM_POLL_MS)
    : undefined;
  const stop = AbortSignal.any([timeout, vmmGone.signal, ...(options.signal ? [options.signal] : [])]);
  try {
    return await followForReady(serialLog, stop, { ...options, vmmGone: vmmGone.signal });
  } finally {
    clearInterval(watch);
  }
}

async function followForReady(
  serialLog: string,
  stop: AbortSignal,
  options: WaitForReadyOptions & { readonly vmmGone?: AbortSignal },
): Promise<ReadyLine> {
  const decoder = new StringDecoder('utf8');
  let partial = '';
  for await (const chunk of followFile(serialLog, { signal: stop, pollMs: 200 })) {
    const lines = (partial + decoder.write(chunk)).split('\n');
    partial = lines.pop() ?? '';
    if (partial.length > MAX_LINE) partial = '';
    for (const line of lines) {
      const ready = readyOf(line);
      if (ready) return ready;
    }
  }
  if (options.signal?.aborted) {
    throw new CliError('INTERRUPTED', `stopped waiting for ${options.vm} to be ready; it keeps running`);
  }
  if (options.vmmGone?.aborted) {
    throw new CliError('FAILED', `${options.vm} stopped before it was ready: its VMM exited`, {
      details: {
        vm: options.vm,
        hint: `see why with \`myhv vm logs ${options.vm}\` and \`myhv vm inspect ${options.vm}\``,
      },
    });
  }
  throw new CliError(
    'TIMEOUT',
    `${options.vm} printed no ready line within ${formatMs(options.timeoutMs)}; it keeps running`,
    {
      details: {
        vm: options.vm,
        hint: `see its console with \`myhv vm logs ${options.vm}\`; only a VM made from an image (--image) prints one`,
      },
    },
  );
}

function readyOf(line: string): ReadyLine | undefined {
  try {
    return parseReadyLine(line);
  } catch {
    return undefined;
  }
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** `ready ip=10.62.0.5 shares=data,logs`, as the guest said it. */
export function formatReady(ready: ReadyLine): string {
  return `ready ip=${ready.ip ?? 'none'} shares=${ready.shares.length > 0 ? ready.shares.join(',') : 'none'}`;
}

/** `--wait-ready` / `--ready-timeout` of a command's options: how long to wait, or undefined for no wait. */
export function readyWait(options: Readonly<Record<string, unknown>>): { timeoutMs: number } | undefined {
  if (options.waitReady !== true) return undefined;
  const timeoutMs =
    options.readyTimeout === undefined ? DEFAULT_READY_TIMEOUT_MS : parseReadyTimeout(options.readyTimeout);
  return { timeoutMs };
}

/** What `--json` adds with `--wait-ready`. */
export interface ReadyJson {
  readonly ip: string | null;
  readonly shares: readonly string[];
}

/**
 * For a VM just booted: waits for its ready line (Ctrl-C stops waiting, exit 130), prints `ready ip=… shares=…`
 * and returns it for the JSON document. Call before any JSON is emitted.
 */
export async function waitForReadyResult(
  ctx: CommandContext,
  vm: VmInfo,
  wait: { timeoutMs: number },
): Promise<ReadyJson> {
  ctx.out.note(`waiting up to ${formatMs(wait.timeoutMs)} for ${vm.name} to be ready…`);
  using interrupt = listenForInterrupt(ctx.io);
  const ready = await waitForReady(vm.paths.serialLog, {
    timeoutMs: wait.timeoutMs,
    signal: interrupt.signal,
    vm: vm.name,
    ...(vm.pid !== undefined ? { vmm: { pid: vm.pid } } : {}),
  });
  ctx.out.print(ctx.out.ok(formatReady(ready)));
  return { ip: ready.ip ?? null, shares: ready.shares };
}
