import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChvProcess } from '../chv-process.js';
import { ChvApiError } from '../errors.js';
import { parseProbeGuestOutput, writeProbeGuest } from './probe-guest.js';

/** How `runProbeGuest` runs: the VMM binary, the command line, a time budget and cancellation. */
export interface RunProbeGuestOptions {
  /** The VMM binary. Default `cloud-hypervisor` on PATH. */
  readonly command?: string;
  /** Arguments before ours (the simulator runs through node). */
  readonly commandArgs?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** The kernel command line the guest is given (and must print back). */
  readonly cmdline?: string;
  /** Budget for the whole run: VMM start, boot and the guest's output. Default 10 s. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** What a probe-guest run measured: start-up and boot time, the command line and the VMM version. */
export interface ProbeGuestRun {
  /** VMM spawn → API answering. */
  readonly readyMs: number;
  /** `vm.create` → the guest's marker on the serial port. */
  readonly bootMs: number;
  /** The command line the guest printed. */
  readonly cmdline: string | undefined;
  /** The VMM's version from `vmm.ping`. */
  readonly vmmVersion: string;
}

/**
 * Boots the probe guest on a VMM and reads its marker from the serial port: proof that this host runs guests,
 * not only that `/dev/kvm` exists. Everything it makes (a short directory in /tmp, the VMM) is gone when it
 * returns or throws. Throws the VMM's own error (e.g. EXITED "no supported hypervisor") or TIMEOUT.
 */
export async function runProbeGuest(options: RunProbeGuestOptions = {}): Promise<ProbeGuestRun> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const signal = AbortSignal.any([
    AbortSignal.timeout(timeoutMs),
    ...(options.signal ? [options.signal] : []),
  ]);
  // Short: the API socket path is limited to 107 bytes.
  const dir = await mkdtemp('/tmp/myhv-probe-');
  const serialFile = join(dir, 'serial.log');
  const cmdline = options.cmdline ?? 'console=ttyS0 myhv.probe=1';
  let vmm: ChvProcess | undefined;
  try {
    const kernel = await writeProbeGuest(join(dir, 'probe.elf'));
    const spawned = performance.now();
    vmm = await ChvProcess.spawn({
      ...(options.command ? { command: options.command } : {}),
      ...(options.commandArgs ? { commandArgs: options.commandArgs } : {}),
      ...(options.env ? { env: options.env } : {}),
      socketPath: join(dir, 'api.sock'),
      logFile: join(dir, 'vmm.log'),
      readyTimeoutMs: timeoutMs,
      signal,
    });
    const readyMs = performance.now() - spawned;
    const created = performance.now();
    await vmm.client.vmCreate(
      {
        payload: { kernel, cmdline },
        cpus: { boot_vcpus: 1, max_vcpus: 1 },
        memory: { size: 64 * 1024 * 1024 },
        serial: { mode: 'File', file: serialFile },
        console: { mode: 'Off' },
      },
      { signal },
    );
    await vmm.client.vmBoot({ signal });
    for (;;) {
      const output = parseProbeGuestOutput(await readFile(serialFile, 'utf8').catch(() => ''));
      if (output.booted && output.cmdline !== undefined) {
        return {
          readyMs,
          bootMs: performance.now() - created,
          cmdline: output.cmdline,
          vmmVersion: vmm.serverVersion.raw,
        };
      }
      if (signal.aborted) {
        throw new ChvApiError(
          'TIMEOUT',
          `the probe guest booted but printed no marker within ${timeoutMs} ms (serial: ${JSON.stringify(
            (await readFile(serialFile, 'utf8').catch(() => '')).slice(-200),
          )})`,
        );
      }
      await sleep(2);
    }
  } finally {
    // The probe guest ignores the power button: go straight to the VMM's own shutdown.
    await vmm?.stop({ gracefulMs: 0 }).catch(() => undefined);
    await vmm?.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}
