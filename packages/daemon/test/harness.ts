import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  realVmmBinary,
  realVmmSkipReason,
  simulatorCommand,
  writeProbeGuest,
} from '@my-hypervisor/chv-client/testing';
import { createMemoryNetOps, type MemoryNetOps, TapNetwork } from '@my-hypervisor/net-ops';
import { VmManager, type VmmOptions } from '@my-hypervisor/vm-manager';
import { createDaemon, type Daemon, type DaemonOptions } from '../src/index.js';

const exec = promisify(execFile);

/** The real VMM where this host can run guests (MYHV_CLOUD_HYPERVISOR and /dev/kvm), else undefined. */
const realVmmUnused = realVmmSkipReason();
export const realVmm = realVmmUnused ? undefined : realVmmBinary();
if (realVmmUnused) console.warn(`skipped: the daemon's real-VMM test, because ${realVmmUnused}`);

/** A manager over an in-memory network and the simulator (or the real VMM), in throwaway directories. */
export interface World extends AsyncDisposable {
  readonly stateDir: string;
  readonly runDir: string;
  readonly kernel: string;
  readonly memory: MemoryNetOps;
  readonly vmm: VmmOptions;
  /** A new manager over the same state (another process, in spirit). */
  manager(): VmManager;
  /** A daemon over a new manager, on `<runDir>/myhvd.sock`. */
  daemon(options?: Partial<DaemonOptions>): Promise<Daemon>;
  readonly socketPath: string;
}

let netnsCounter = 0;

export async function makeWorld(options: { vmm?: 'simulator' | 'real' } = {}): Promise<World> {
  const root = await mkdtemp(join(tmpdir(), 'myhvd-'));
  // As on a real host, a confined VMM (a user of its own) must be let through to the kernel.
  await chmod(root, 0o711);
  // Socket paths are limited to 108 bytes: keep the run directory short.
  const runDir = await mkdtemp('/tmp/md-');
  const stateDir = join(root, 'state');
  const kernel = await writeProbeGuest(join(root, 'vmlinux'));
  const memory = createMemoryNetOps();
  const sim = simulatorCommand();
  // Nothing makes TAPs on an in-memory network: the real VMM makes its own, which takes root (so unconfined) and
  // a namespace of its own (never the host's).
  const real = options.vmm === 'real' && realVmm ? realVmm : undefined;
  const netns = real ? `myhvd-test-${process.pid}-${netnsCounter++}` : undefined;
  if (netns) await exec('ip', ['netns', 'add', netns]);
  const vmm: VmmOptions = real
    ? { command: real, ...(netns ? { netns } : {}) }
    : {
        command: sim.command,
        commandArgs: [...sim.args],
        stopGracefulMs: 1_000,
        // Twenty simulators (Node processes) starting at once on a loaded 2-core CI machine take their time.
        readyTimeoutMs: 60_000,
        env: { MYHV_SIM_STRICT_TAPS: '0' },
      };
  const manager = (options: { shareResults?: boolean } = {}) =>
    new VmManager({
      stateDir,
      runDir,
      ...options,
      network: new TapNetwork({
        bridge: memory,
        tap: memory,
        nat: memory,
        bridgeName: 'myhvd0',
        subnet: '10.63.0.0/24',
      }),
      vmm,
      ...(real ? { confinement: { mode: 'off' as const } } : {}),
      inventory: { bridge: memory, nat: memory },
      hostProbe: { localAddresses: async () => ['127.0.0.1'], listening: async () => new Set<number>() },
    });
  const daemons: Daemon[] = [];
  const socketPath = join(runDir, 'myhvd.sock');
  return {
    stateDir,
    runDir,
    kernel,
    memory,
    vmm,
    socketPath,
    manager,
    async daemon(extra = {}) {
      // As `myhv daemon run` makes it: answers shared between calls.
      const daemon = await createDaemon({
        manager: manager({ shareResults: true }),
        socketPath,
        watchIntervalMs: 0,
        ...extra,
      });
      daemons.push(daemon);
      return daemon;
    },
    async [Symbol.asyncDispose]() {
      for (const daemon of daemons) await daemon.close();
      const last = manager();
      await last.reconcile().catch(() => undefined);
      for (const vm of await last.list().catch(() => [])) {
        await last.delete(vm.name, { force: true }).catch(() => undefined);
      }
      await rm(root, { recursive: true, force: true });
      await rm(runDir, { recursive: true, force: true });
      if (netns) await exec('ip', ['netns', 'del', netns]).catch(() => undefined);
    },
  };
}
