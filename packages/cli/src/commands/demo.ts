import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { NetworkBackend } from '@my-hypervisor/net-ops';
import { type VmInfo, VmManager } from '@my-hypervisor/vm-manager';
import { type HostNetOps, openNetOps, openNetwork, openStorage } from '../backends.js';
import { type DemoPlaces, demoPlaces, type SweepChange, sweepDemo } from '../demo-leftovers.js';
import { CliError, invalidValue } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { formatDuration } from '../format.js';
import { pidsMentioning, runProgram } from '../host-process.js';
import { listenForInterrupt } from '../interrupt.js';
import type { CommandHandler } from '../run.js';
import { serialRelay } from '../serial-relay-command.js';
import { inspectFields, recordSteps, vmSummary, vmTableHeaders, vmTableRow } from '../vm-view.js';
import { assertVmmWorks, describeVmm, vmmJson } from '../vmm-choice.js';
import { gatewayCidr } from './net.js';

const BRIDGE = 'myhvbr0';
const SUBNET = '10.62.0.0/24';
const VMS = [
  { name: 'demo-1', hostPort: 8080 },
  { name: 'demo-2', hostPort: 8081 },
] as const;

interface Timing {
  readonly step: string;
  readonly ms: number;
}

/**
 * `myhv demo`: the whole lifecycle in a fresh network namespace with its own state and run directories — bridge,
 * two VMs with a port forward each sharing one folder, `ls`, `inspect`, stop, remove — then deletes everything and
 * prints the timings. Ctrl-C at any point cleans up and exits 130.
 */
export const demo: CommandHandler = async (ctx) => {
  const { out } = ctx;
  if (process.getuid?.() !== 0) {
    throw new CliError(
      'NOT_ROOT',
      'myhv demo needs root: it creates a network namespace, a bridge, TAPs and forwards',
      {
        details: { hint: 'run it as root (sudo myhv demo); scripts/setup prepares the host' },
      },
    );
  }
  const config = await ctx.config();
  // The demo alone may fall back to the simulator; its first line says so.
  const vmm = await ctx.vmm({ fallbackToSimulator: true });
  const kernelFlag = ctx.options.kernel as string | undefined;
  const initramfs = ctx.options.initramfs as string | undefined;
  if (initramfs !== undefined && kernelFlag === undefined) {
    throw invalidValue('--initramfs', 'needs --kernel', 'pass --kernel with it, or drop --initramfs');
  }
  const places = demoPlaces(process.pid);
  out.print(`myhv demo: ${describeVmm(vmm)}`);
  // Before the namespace and directories exist: a VMM that is not cloud-hypervisor changes nothing.
  await assertVmmWorks(vmm);

  const timings: Timing[] = [];
  const started = performance.now();
  const step = async <T>(label: string, work: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    out.print(`${out.style.green('▸')} ${label}`);
    let outcome = 'failed after';
    try {
      const result = await work();
      outcome = 'done in';
      return result;
    } finally {
      const ms = performance.now() - t0;
      timings.push({ step: label, ms });
      out.print(out.style.dim(`  ${outcome} ${formatDuration(ms)}`));
    }
  };

  using interrupt = listenForInterrupt(ctx.io, (name) =>
    out.note(`${name}: stopping the demo and removing everything it made (this takes a moment)…`),
  );
  const { signal } = interrupt;
  let manager: VmManager | undefined;
  let ops: HostNetOps | undefined;
  let storage: Awaited<ReturnType<typeof openStorage>> | undefined;
  const created: VmInfo[] = [];
  let kernel = kernelFlag;
  let guest: { serial: string; cmdline: string | undefined } | undefined;
  let failure: unknown;
  try {
    // Only a dead demo with our pid can have left these: remove them first.
    await sweepDemo(places);
    await step(`namespace ${places.netns}`, () => createNamespace(places));
    const dirs = await step(`directories ${places.dir}`, () => createDirs(places));
    if (kernel === undefined) {
      // The probe guest boots on a real VMM too: it prints three lines on the serial port and halts.
      const { writeProbeGuest } = await import('@my-hypervisor/chv-client/testing');
      kernel = await writeProbeGuest(join(places.dir, 'vmlinux'));
      out.print(
        `kernel: ${kernel} is the probe guest (a 600-byte PVH kernel: it prints to the serial port and halts)`,
      );
    }
    ops = await openNetOps({
      netBackend: 'local',
      netns: places.netns,
      nat: config.nat,
      mosnetSocket: config.mosnetSocket,
    });
    const netOps = ops;
    const network: NetworkBackend = await openNetwork(netOps, {
      bridge: BRIDGE,
      subnet: SUBNET,
      backend: 'local',
    });
    storage = await openStorage(dirs.run);
    manager = new VmManager({
      stateDir: dirs.state,
      runDir: dirs.run,
      network,
      storage,
      vmm: {
        command: vmm.command,
        commandArgs: vmm.commandArgs,
        netns: places.netns,
        detached: true,
        ...(serialRelay() ? { serialRelay: serialRelay()! } : {}),
      },
      inventory: { bridge: netOps, nat: netOps },
      confinement: { mode: config.confinement },
    });
    const vmManager = manager;
    await step(`bridge ${BRIDGE} ${gatewayCidr(SUBNET)}`, () =>
      netOps.ensureBridge({ name: BRIDGE, address: gatewayCidr(SUBNET) }, { signal }),
    );
    const progress = recordSteps(out.progress());
    for (const vm of VMS) {
      const info = await step(`create ${vm.name} (forward ${vm.hostPort}→80, share ${dirs.share})`, () =>
        vmManager.create(
          {
            name: vm.name,
            kernel,
            ...(initramfs ? { initramfs } : {}),
            memory: '256M',
            network: { forwards: [{ hostPort: vm.hostPort, guestPort: 80 }] },
            shares: [{ hostPath: dirs.share, tag: 'shared' }],
          },
          { signal, onProgress: progress.onProgress },
        ),
      );
      created.push(info);
    }
    const listed = await vmManager.list();
    out.print('');
    out.print('$ myhv vm ls');
    out.table(vmTableHeaders, listed.map(vmTableRow), { aligned: true });
    out.print('');
    out.print(`$ myhv vm inspect ${VMS[0].name}`);
    out.fields(inspectFields(await vmManager.get(VMS[0].name)));
    out.print('');
    if (kernelFlag === undefined) {
      // What reached the guest: the probe guest prints the command line (with the manager's ip=) it was given.
      const first = created[0]!;
      guest = await readProbeSerial(first.paths.serialLog, signal);
      out.print(`$ myhv vm logs ${first.name}`);
      if (vmm.kind === 'simulator')
        out.print(out.style.dim('(the simulator writes what the probe guest would print; no guest runs)'));
      out.print(guest.serial.trimEnd() || out.style.dim('(nothing on the serial port yet)'));
      out.print('');
    }
    for (const vm of VMS) {
      await step(`stop ${vm.name}`, () =>
        vmManager.stop(vm.name, {
          signal,
          // The probe guest ignores the power button: do not wait for it.
          gracefulMs: kernelFlag === undefined ? 0 : 1_000,
          onProgress: progress.onProgress,
        }),
      );
    }
    for (const vm of VMS) {
      await step(`rm ${vm.name}`, () =>
        vmManager.delete(vm.name, { signal, onProgress: progress.onProgress }),
      );
    }
  } catch (error) {
    failure = error;
  }

  // Cleanup never takes the signal: once interrupted, it must still finish.
  const cleanupStart = performance.now();
  const cleanupErrors: string[] = [];
  let swept: SweepChange[] = [];
  if (manager) {
    for (const vm of await manager.list().catch(() => [] as VmInfo[])) {
      await manager
        .delete(vm.name, { force: true })
        .catch((error: unknown) => cleanupErrors.push(`${vm.name}: ${(error as Error).message}`));
    }
  }
  await ops?.close?.().catch(() => undefined);
  await Promise.resolve((storage as Partial<AsyncDisposable> | undefined)?.[Symbol.asyncDispose]?.()).catch(
    () => undefined,
  );
  try {
    swept = await sweepDemo(places);
  } catch (error) {
    cleanupErrors.push((error as Error).message);
  }
  const leftovers = findLeftovers(places);
  timings.push({ step: 'cleanup (namespace, processes, directories)', ms: performance.now() - cleanupStart });
  const totalMs = performance.now() - started;

  const json = {
    vmm: vmmJson(vmm),
    netns: places.netns,
    dir: places.dir,
    kernel: { path: kernel ?? null, probeGuest: kernelFlag === undefined },
    guest: guest ? { vm: VMS[0].name, cmdline: guest.cmdline ?? null } : null,
    vms: created.map(vmSummary),
    steps: timings.map((t) => ({ step: t.step, ms: Math.round(t.ms * 100) / 100 })),
    totalMs: Math.round(totalMs * 100) / 100,
    cleanedUp: leftovers.length === 0,
    leftovers,
    swept,
  };
  out.result(json, () => {
    out.print('');
    out.print('summary:');
    out.table(
      ['step', 'time'],
      [...timings.map((t) => [t.step, formatDuration(t.ms)]), ['total', formatDuration(totalMs)]],
      { aligned: true },
    );
    if (leftovers.length === 0)
      out.print(out.ok(`nothing left behind: ${places.netns} and ${places.dir} are gone`));
    else out.print(out.bad(`left behind: ${leftovers.join(', ')} (run \`myhv gc\`)`));
  });
  if (interrupt.received) {
    throw new CliError(
      'INTERRUPTED',
      `demo interrupted by ${interrupt.received}; ${leftovers.length === 0 ? 'everything it made was removed' : `left: ${leftovers.join(', ')}`}`,
      {
        cause: failure,
      },
    );
  }
  if (failure) throw failure;
  if (leftovers.length > 0 || cleanupErrors.length > 0) {
    throw new CliError('FAILED', `demo cleanup incomplete: ${[...cleanupErrors, ...leftovers].join('; ')}`, {
      details: { hint: 'run `myhv gc` to remove what is left' },
    });
  }
  return ExitCode.OK;
};

async function createNamespace(places: DemoPlaces): Promise<void> {
  const add = await runProgram('ip', ['netns', 'add', places.netns]);
  if (add.exitCode !== 0) {
    throw new CliError(
      'FAILED',
      `cannot create network namespace ${places.netns}: ${add.stderr.trim() || add.spawnError}`,
      {
        details: { hint: 'run `myhv doctor`: the demo needs iproute2 and root' },
      },
    );
  }
  await runProgram('ip', ['-n', places.netns, 'link', 'set', 'lo', 'up']);
}

async function createDirs(places: DemoPlaces): Promise<{ state: string; run: string; share: string }> {
  const dirs = {
    state: join(places.dir, 'state'),
    run: join(places.dir, 'run'),
    share: join(places.dir, 'shared'),
  };
  // 0711: a confined VMM (a user of its own) passes through to the demo's kernel; nobody else lists or writes.
  await mkdir(places.dir, { mode: 0o711 });
  await chmod(places.dir, 0o711);
  for (const dir of Object.values(dirs)) await mkdir(dir, { mode: 0o700 });
  await writeFile(join(dirs.share, 'hello.txt'), 'shared with the demo VMs over virtio-fs\n');
  return dirs;
}

/** What should be gone after cleanup and is not. */
function findLeftovers(places: DemoPlaces): string[] {
  const left: string[] = [];
  if (existsSync(`/run/netns/${places.netns}`)) left.push(`netns ${places.netns}`);
  if (existsSync(places.dir)) left.push(places.dir);
  for (const pid of pidsMentioning(`${places.dir}/`)) left.push(`process ${pid}`);
  return left;
}

/** The probe guest's serial output once its command line is complete (up to 5 s), for the demo to show. */
async function readProbeSerial(
  serialLog: string,
  signal: AbortSignal,
): Promise<{ serial: string; cmdline: string | undefined }> {
  const { parseProbeGuestOutput } = await import('@my-hypervisor/chv-client/testing');
  let serial = '';
  for (let waited = 0; waited < 5_000 && !signal.aborted; waited += 10) {
    serial = await readFile(serialLog, 'utf8').catch(() => '');
    const { cmdline } = parseProbeGuestOutput(serial);
    if (cmdline !== undefined) return { serial, cmdline };
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return { serial, cmdline: undefined };
}
