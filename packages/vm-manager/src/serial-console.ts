import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import type net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isProcessAlive, processStartTime } from '@my-hypervisor/host-utils';
import { VmManagerError } from './errors.js';
import { connectConsole, runSerialRelay } from './serial-relay.js';
import type { VmmRecord } from './state-store.js';
import type { VmmOptions } from './vmm.js';

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

/** `myhv __serial-relay` and serial-relay-bin: parses the three paths and relays until the VMM closes. */
export async function runSerialRelayCli(argv: readonly string[]): Promise<number> {
  const value = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const vmmSocket = value('--vmm-socket');
  const consoleSocket = value('--console-socket');
  const logFile = value('--log');
  if (!vmmSocket || !consoleSocket || !logFile) {
    process.stderr.write('usage: --vmm-socket PATH --console-socket PATH --log PATH\n');
    return 2;
  }
  const stop = new AbortController();
  process.once('SIGTERM', () => stop.abort());
  process.once('SIGINT', () => stop.abort());
  try {
    await runSerialRelay({ vmmSocket, consoleSocket, logFile, signal: stop.signal });
    return 0;
  } catch (error) {
    process.stderr.write(`serial relay: ${(error as Error).message}\n`);
    return 1;
  }
}

/**
 * Starts the detached relay for a VM whose VMM is up (it waits for the serial socket that boot binds) and returns
 * its identity for the record. Its stderr goes to `stderrFile` (the VMM's log directory).
 */
export function spawnSerialRelay(
  options: VmmOptions,
  paths: { serialSocket: string; consoleSocket: string; serialLog: string; stderrFile: string },
): { pid: number; startTime?: number } {
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
      ],
      // Detached like the VMM: it outlives the CLI that created the VM.
      { detached: true, cwd: '/', stdio: ['ignore', 'ignore', stderr] },
    );
    if (child.pid === undefined) {
      throw new VmManagerError('VMM_FAILED', `the serial relay did not start (${relay.command})`);
    }
    child.unref();
    const startTime = processStartTime(child.pid);
    return { pid: child.pid, ...(startTime !== undefined ? { startTime } : {}) };
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
    if (!isProcessAlive(relay.pid, relay.startTime) || Date.now() > deadline) {
      throw new VmManagerError('VMM_FAILED', 'the serial relay did not come up (see vmm.log.stderr)', {
        details: { step: 'serial-relay' },
      });
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
