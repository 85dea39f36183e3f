import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import type net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isProcessAlive, processStartTime } from '@my-hypervisor/host-utils';
import { VmManagerError } from './errors.js';
import { EventJournal, type JournalOptions } from './event-journal.js';
import { connectConsole, runSerialRelay } from './serial-relay.js';
import type { VmmRecord, VmRecord } from './state-store.js';
import { type VmHost, vmPaths } from './vm-resources.js';
import type { VmmOptions } from './vmm.js';
import { forwardVmmEvents, processGone } from './vmm-events.js';

// A VM's serial console: the VMM serves its serial port on a socket (one client); a detached relay per VM is that
// client, appends the output to serial.log and serves console clients (docs/adr/010-serial-console.md).

/** How to run the relay: `command args… --vmm-socket S --console-socket C --log L`. */
export interface SerialRelayCommand {
  readonly command: string;
  readonly args?: readonly string[];
}

/** The relay's own bin beside this module (dist), else its source through tsx (tests from sources). */
export function defaultSerialRelayCommand(): SerialRelayCommand {
  for (const candidate of ['./serial-relay-bin.js', '../dist/serial-relay-bin.js']) {
    const file = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(file)) return { command: process.execPath, args: [file] };
  }
  const source = fileURLToPath(new URL('./serial-relay-bin.ts', import.meta.url));
  try {
    if (!existsSync(source)) throw new Error(`${source} is missing`);
    const tsx = createRequire(import.meta.url).resolve('tsx');
    return { command: process.execPath, args: ['--import', pathToFileURL(tsx).href, source] };
  } catch (error) {
    // Bundled into an application: it has to say how to run the relay (myhv passes `myhv.js __serial-relay`).
    throw new VmManagerError(
      'INVALID_ARGUMENT',
      'options.vmm.serialRelay: the serial relay bin is not beside this module; say how to run it',
      { cause: error, details: { field: 'options.vmm.serialRelay' } },
    );
  }
}

/**
 * `myhv __serial-relay` and serial-relay-bin: parses the three paths and relays until the VMM closes. With
 * `--vmm-pid PID [--vmm-start-time T]` it waits for the VMM's serial socket only while that VMM lives; with
 * `--events FILE --journal DIR --vm NAME` (and the VMM's pid) it also copies the VMM's event-monitor
 * feed into the journal until the VMM is gone (`--journal-max-bytes`, `--journal-keep`: the journal's rotation).
 */
export async function runSerialRelayCli(argv: readonly string[]): Promise<number> {
  const value = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const number = (flag: string) => {
    const text = value(flag);
    return text === undefined || !/^\d+$/.test(text) ? undefined : Number(text);
  };
  const vmmSocket = value('--vmm-socket');
  const consoleSocket = value('--console-socket');
  const logFile = value('--log');
  const events = value('--events');
  const journalDir = value('--journal');
  const vm = value('--vm');
  const vmmPid = number('--vmm-pid');
  if (
    !vmmSocket ||
    !consoleSocket ||
    !logFile ||
    (events !== undefined && (!journalDir || !vm || vmmPid === undefined))
  ) {
    process.stderr.write(
      'usage: --vmm-socket PATH --console-socket PATH --log PATH [--events PATH --journal DIR --vm NAME --vmm-pid PID]\n',
    );
    return 2;
  }
  const stop = new AbortController();
  process.once('SIGTERM', () => stop.abort());
  process.once('SIGINT', () => stop.abort());
  const vmmStart = number('--vmm-start-time');
  const vmmAlive = vmmPid !== undefined ? () => isProcessAlive(vmmPid, vmmStart) : () => true;
  if (argv.includes('--hold') && !(await heldUntilReleased(stop.signal, vmmAlive))) return 0;
  const relay = runSerialRelay({
    vmmSocket,
    consoleSocket,
    logFile,
    signal: stop.signal,
    ...(vmmPid !== undefined ? { vmmAlive } : {}),
  });
  const copy = events
    ? copyVmmEvents({
        file: events,
        journalDir: journalDir!,
        vm: vm!,
        // The serial socket closes as the VM shuts down; the VMM writes its last events after that.
        until: relay.catch(() => undefined).then(() => processGone(vmmPid!, vmmStart, 5_000)),
        signal: stop.signal,
        maxBytes: number('--journal-max-bytes'),
        keep: number('--journal-keep'),
      })
    : undefined;
  let code = 0;
  try {
    await relay;
  } catch (error) {
    process.stderr.write(`serial relay: ${(error as Error).message}\n`);
    code = 1;
  }
  if (copy) {
    try {
      await copy;
    } catch (error) {
      process.stderr.write(`serial relay: the VMM's events: ${(error as Error).message}\n`);
      code = 1;
    }
  }
  return code;
}

/**
 * `--hold` (a standby's relay, standby.ts): says `held` on stdout once it can be released, then waits for SIGUSR2
 * (true) — or for its VMM to end or SIGTERM (false: nothing to serve).
 */
function heldUntilReleased(signal: AbortSignal, vmmAlive: () => boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (go: boolean) => {
      clearInterval(watch);
      process.off('SIGUSR2', release);
      signal.removeEventListener('abort', end);
      resolve(go);
    };
    const release = () => done(true);
    const end = () => done(false);
    const watch = setInterval(() => {
      if (!vmmAlive()) done(false);
    }, 250);
    process.on('SIGUSR2', release);
    signal.addEventListener('abort', end, { once: true });
    // Whoever started it may have stopped listening.
    process.stdout.on('error', () => undefined);
    process.stdout.write('held\n');
  });
}

async function copyVmmEvents(options: {
  file: string;
  journalDir: string;
  vm: string;
  until: Promise<unknown>;
  signal: AbortSignal;
  maxBytes: number | undefined;
  keep: number | undefined;
}): Promise<void> {
  const journal = new EventJournal(options.journalDir, {
    ...(options.maxBytes !== undefined ? { maxBytes: options.maxBytes } : {}),
    ...(options.keep !== undefined ? { keep: options.keep } : {}),
  });
  try {
    await forwardVmmEvents({ ...options, journal });
  } finally {
    journal.close();
  }
}

/** Where the relay copies a VM's VMM events to (the journal), and which VMM writes them. */
export interface VmmEventsCopy {
  readonly file: string;
  readonly journal: { readonly dir: string } & JournalOptions;
  readonly vm: string;
  readonly vmm: { readonly pid: number; readonly startTime?: number };
}

/** The VMM the relay serves: it waits for the VMM's serial socket only while that process lives. */
function vmmArgs(vmm: { pid: number; startTime?: number }): string[] {
  return [
    '--vmm-pid',
    String(vmm.pid),
    ...(vmm.startTime !== undefined ? ['--vmm-start-time', String(vmm.startTime)] : []),
  ];
}

function eventsArgs(events: VmmEventsCopy): string[] {
  const { journal, vmm } = events;
  return [
    '--events',
    events.file,
    '--journal',
    journal.dir,
    '--vm',
    events.vm,
    ...vmmArgs(vmm),
    ...(journal.maxBytes !== undefined ? ['--journal-max-bytes', String(journal.maxBytes)] : []),
    ...(journal.keep !== undefined ? ['--journal-keep', String(journal.keep)] : []),
  ];
}

/**
 * Starts the detached relay for a VM whose VMM is up (it waits for the serial socket that boot binds) and returns
 * its identity for the record. Its stderr goes to `stderrFile` (the VMM's log directory).
 */
export function spawnSerialRelay(
  options: VmmOptions,
  paths: RelayPaths,
  events?: VmmEventsCopy,
  vmm?: { pid: number; startTime?: number },
): { pid: number; startTime?: number } {
  const { child, identity } = startRelay(options, paths, events, vmm, false);
  child.unref();
  return identity;
}

/**
 * Like `spawnSerialRelay`, but the relay holds (`--hold`) until it gets SIGUSR2: a standby's (standby.ts), started
 * ahead with the paths the VM's relay has, released when its VMM takes over. Resolves once it can be released (a
 * SIGUSR2 before then would end it); VMM_FAILED if it ends or says nothing within `timeoutMs`.
 */
export async function spawnHeldSerialRelay(
  options: VmmOptions,
  paths: RelayPaths,
  events: VmmEventsCopy | undefined,
  vmm: { pid: number; startTime?: number },
  timeoutMs: number,
): Promise<{ pid: number; startTime?: number }> {
  const { child, identity } = startRelay(options, paths, events, vmm, true);
  try {
    await new Promise<void>((resolve, reject) => {
      const settle = (error?: Error) => {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        if (error) reject(error);
        else resolve();
      };
      const failed = (why: string) => () =>
        settle(new VmManagerError('VMM_FAILED', `the standby's serial relay ${why}`));
      const timer = setTimeout(failed(`said nothing in ${timeoutMs} ms`), timeoutMs);
      child.stdout!.once('data', () => settle());
      child.once('exit', failed('exited before it was ready'));
      child.once('error', failed('did not start'));
    });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  } finally {
    child.stdout!.destroy();
    child.unref();
  }
  return identity;
}

/** Where a relay reads, serves and writes. */
export interface RelayPaths {
  readonly serialSocket: string;
  readonly consoleSocket: string;
  readonly serialLog: string;
  readonly stderrFile: string;
}

function startRelay(
  options: VmmOptions,
  paths: RelayPaths,
  events: VmmEventsCopy | undefined,
  vmm: { pid: number; startTime?: number } | undefined,
  hold: boolean,
): { child: ChildProcess; identity: { pid: number; startTime?: number } } {
  const relay = options.serialRelay ?? defaultSerialRelayCommand();
  const stderr = openSync(paths.stderrFile, 'a', 0o600);
  try {
    const child = spawn(
      relay.command,
      [
        ...(relay.args ?? []),
        '--vmm-socket',
        paths.serialSocket,
        '--console-socket',
        paths.consoleSocket,
        '--log',
        paths.serialLog,
        ...(events ? eventsArgs(events) : vmm ? vmmArgs(vmm) : []),
        ...(hold ? ['--hold'] : []),
      ],
      // Detached like the VMM: it outlives the CLI that created the VM.
      { detached: true, cwd: '/', stdio: ['ignore', hold ? 'pipe' : 'ignore', stderr] },
    );
    if (child.pid === undefined) {
      throw new VmManagerError('VMM_FAILED', `the serial relay did not start (${relay.command})`);
    }
    const startTime = processStartTime(child.pid);
    return { child, identity: { pid: child.pid, ...(startTime !== undefined ? { startTime } : {}) } };
  } finally {
    closeSync(stderr);
  }
}

/** Waits until the relay serves the console (it has connected to the VMM and opened the log). */
export async function waitForConsole(
  relay: { pid: number; startTime?: number },
  consoleSocket: string,
  { timeoutMs = 10_000, signal }: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(consoleSocket)) {
    signal?.throwIfAborted();
    const alive = isProcessAlive(relay.pid, relay.startTime);
    if (!alive || Date.now() > deadline) {
      const why = alive ? `it did not serve the console within ${timeoutMs} ms` : 'it exited';
      throw new VmManagerError(
        'VMM_FAILED',
        `the serial relay did not come up: ${why} (see vmm.log.stderr)`,
        {
          details: { step: 'serial-relay' },
        },
      );
    }
    await sleep(10);
  }
}

/** True when the VMM record names a relay that still runs. */
export function serialRelayAlive(vmm: VmmRecord | undefined): boolean {
  const relay = vmm?.serialRelay;
  return relay !== undefined && isProcessAlive(relay.pid, relay.startTime);
}

/** Attaches to a running VM's console as its one writer (BUSY when another console is attached). */
export async function openConsole(
  vm: string,
  vmm: VmmRecord | undefined,
  consoleSocket: string,
  options: { signal?: AbortSignal } = {},
): Promise<net.Socket> {
  if (!serialRelayAlive(vmm) || !existsSync(consoleSocket)) {
    throw new VmManagerError('WRONG_STATE', `${vm}: it has no serial console (start it first)`, {
      details: {
        vm,
        hint: `start it with \`myhv vm start ${vm}\`; \`myhv vm logs ${vm}\` shows its last output`,
      },
    });
  }
  try {
    return await connectConsole(consoleSocket, options);
  } catch (error) {
    if (VmManagerError.isInstance(error)) {
      throw new VmManagerError(error.code, `${vm}: ${error.message}`, {
        cause: error,
        details: { vm, hint: 'detach the other console (Ctrl-]) or read along with `myhv vm logs -f`' },
      });
    }
    throw new VmManagerError('VMM_FAILED', `${vm}: cannot reach its console`, {
      cause: error,
      details: { vm },
    });
  }
}

/**
 * Starts the serial relay of the VM's VMM `vmm` (it waits, watching the run directory, for the serial socket that
 * boot or restore binds, and copies the VMM's events to the journal) and returns `vmm` with it, for the record.
 */
export function withSerialRelay(host: VmHost, record: VmRecord, vmm: VmmRecord): VmmRecord {
  const { paths, events, self } = relayFor(host, record, vmm);
  return { ...vmm, serialRelay: spawnSerialRelay(host.vmm, paths, events, self) };
}

/**
 * What the VM's relay for its VMM `vmm` is started with: the VM's own paths (the run directory's, whichever VMM binds
 * the serial socket there) and, with a journal, the events that VMM writes.
 */
export function relayFor(
  host: VmHost,
  record: VmRecord,
  vmm: VmmRecord,
): {
  paths: RelayPaths;
  events: VmmEventsCopy | undefined;
  self: { pid: number; startTime?: number } | undefined;
} {
  const paths = vmPaths(host, record);
  const { pid, startTime } = vmm;
  const self = pid !== undefined ? { pid, ...(startTime !== undefined ? { startTime } : {}) } : undefined;
  return {
    paths: {
      serialSocket: paths.serialSocket,
      consoleSocket: paths.consoleSocket,
      serialLog: paths.serialLog,
      stderrFile: `${paths.vmmLog}.stderr`,
    },
    events:
      host.journal && self
        ? { file: paths.vmmEvents, journal: host.journal, vm: record.name, vmm: self }
        : undefined,
    self,
  };
}
