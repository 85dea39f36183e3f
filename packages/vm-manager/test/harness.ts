import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  type ProbeGuestOutput,
  parseProbeGuestOutput,
  realVmmBinary,
  realVmmSkipReason,
  simulatorCommand,
  writeProbeGuest,
} from '@my-hypervisor/chv-client/testing';
import { LocalOps } from '@my-hypervisor/net-local';
import { MosnetOps } from '@my-hypervisor/net-mosnet';
import { createMosnetServer } from '@my-hypervisor/net-mosnet/server';
import {
  type BridgeOps,
  createMemoryNetOps,
  type MemoryNetOps,
  type NatOps,
  TapNetwork,
  type TapOps,
} from '@my-hypervisor/net-ops';
import { C_VIRTIOFSD_PATH, VirtioFsStorage } from '@my-hypervisor/storage-virtiofs';
import type { ConfinementOptions, HostProbe, VmmOptions } from '../src/index.js';
import { confinementSupport, VmManager } from '../src/index.js';
import { IpAllocator } from '../src/ip-allocator.js';
import { defaultSerialRelayCommand } from '../src/serial-console.js';
import { StateStore } from '../src/state-store.js';
import { bundledFixture } from './child.js';

const exec = promisify(execFile);

export const isRoot = process.getuid?.() === 0;
/** Whether this host can confine VMMs (root, cgroups, a /dev/kvm group, …). */
export const hostCanConfine = confinementSupport().problems.length === 0;
export const hasVirtiofsd = existsSync(C_VIRTIOFSD_PATH) || existsSync('/usr/libexec/virtiofsd');
/** Why the manager suites run on the simulator rather than MYHV_CLOUD_HYPERVISOR, or undefined. */
export const realVmmUnused = realVmmSkipReason();
/** The real VMM the suites run on: MYHV_CLOUD_HYPERVISOR, where this host can run guests. */
export const realVmm = realVmmUnused ? undefined : realVmmBinary();
/**
 * VMMs on an in-memory network run confined (the default `auto` as root on a host that can): each as its own uid.
 * Not the real VMM there: nothing makes its TAP on such a network, so it makes its own, which takes root
 * (CAP_NET_ADMIN) and a namespace of its own. The real VMM runs confined on real networks (`backend: 'local'`).
 */
export const confined = hostCanConfine && !realVmm;
/** Which VMM the suites run on, for their titles. */
export const vmmLabel = realVmm ? 'real cloud-hypervisor' : 'simulator VMM';
if (!realVmm) console.warn(`vm-manager suites use the simulator, not the real VMM, because ${realVmmUnused}`);
export const SUBNET = '10.62.0.0/24';
export const BRIDGE = 'myhvbr0';

export type BackendKind = 'memory' | 'mosnet' | 'local';

export interface HarnessConfig {
  readonly backend: BackendKind;
  readonly shares?: boolean;
  readonly simEnv?: Record<string, string>;
  readonly confinement?: ConfinementOptions;
  /** VMM options over the harness's own (the same for the simulator and the real VMM). */
  readonly vmm?: Partial<VmmOptions>;
}

/** What a child process needs to build the same manager over the same host state. */
export interface ChildConfig {
  readonly stateDir: string;
  readonly runDir: string;
  readonly backend: Exclude<BackendKind, 'memory'>;
  readonly mosnetSocket?: string;
  readonly netns?: string;
  readonly storageRunDir?: string;
  readonly vmm: VmmOptions;
  /** The harness manager's confinement setting, when it sets one (the real VMM on an in-memory network: off). */
  readonly confinement?: ConfinementOptions;
}

export interface Harness extends AsyncDisposable {
  readonly manager: VmManager;
  readonly stateDir: string;
  readonly runDir: string;
  readonly kernel: string;
  readonly shareDir: string;
  readonly memory?: MemoryNetOps;
  readonly netns?: string;
  readonly ops: BridgeOps & TapOps & NatOps;
  readonly child: ChildConfig;
  /** The manager's state files, read the way the manager reads them. */
  readonly store: StateStore;
  /** The manager's IP reservations. */
  readonly ipam: IpAllocator;
  /** A fresh manager over the same state (another "process" in spirit). */
  newManager(): VmManager;
}

let netnsCounter = 0;

/** The namespace the latest harness runs its VMMs in (the real VMM's own on an in-memory network), if any. */
export let latestVmmNetns: string | undefined;

/** The host of an in-memory network: loopback only, nothing listening. */
const memoryHostProbe: HostProbe = {
  localAddresses: async () => ['127.0.0.1'],
  listening: async () => new Set<number>(),
};

export async function makeHarness(config: HarnessConfig): Promise<Harness> {
  const root = await mkdtemp(join(tmpdir(), 'myhv-vmm-'));
  // As on a real host, a confined VMM (a user of its own) must be let through to the kernel and disks.
  await chmod(root, 0o711);
  // Sockets need a short path: /tmp/mh-XXXXXX.
  const runDir = await mkdtemp('/tmp/mh-');
  const stateDir = join(root, 'state');
  const kernel = process.env.MYHV_TEST_KERNEL ?? (await writeProbeGuest(join(root, 'vmlinux')));
  const shareDir = join(root, 'share');
  await mkdir(shareDir);
  const cleanups: (() => Promise<unknown>)[] = [];

  let ops: BridgeOps & TapOps & NatOps;
  let memory: MemoryNetOps | undefined;
  let netns: string | undefined;
  let mosnetSocket: string | undefined;
  if (config.backend === 'local') {
    netns = `myhv-vmm-${process.pid}-${netnsCounter++}`;
    await exec('ip', ['netns', 'add', netns]);
    cleanups.push(() => exec('ip', ['netns', 'del', netns!]).catch(() => undefined));
    await exec('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    ops = new LocalOps({ netns });
  } else {
    memory = createMemoryNetOps();
    ops = memory;
    if (config.backend === 'mosnet') {
      mosnetSocket = join(runDir, 'mosnet.sock');
      const server = await createMosnetServer({ ops: memory, socketPath: mosnetSocket });
      cleanups.push(() => server.close());
      const mosnet = await MosnetOps.connect({ socketPath: mosnetSocket });
      cleanups.push(() => mosnet.close());
      ops = mosnet;
    }
  }
  const storageRunDir = join(runDir, 'fs');
  const storage = config.shares ? new VirtioFsStorage({ runDir: storageRunDir, detached: true }) : undefined;
  if (storage) cleanups.push(() => storage.close());

  // The real VMM on an in-memory network makes its TAP itself: in a namespace of its own, never the host's.
  let vmmNetns = netns;
  if (realVmm && !vmmNetns) {
    const own = `myhv-vmm-${process.pid}-${netnsCounter++}`;
    await exec('ip', ['netns', 'add', own]);
    cleanups.push(() => exec('ip', ['netns', 'del', own]).catch(() => undefined));
    vmmNetns = own;
  }
  latestVmmNetns = vmmNetns;
  const confinement =
    config.confinement ?? (realVmm && config.backend !== 'local' ? { mode: 'off' as const } : undefined);
  const sim = simulatorCommand();
  // Explicit, so a manager bundled into a child process (manager-child.ts) finds the relay too.
  const serialRelay = defaultSerialRelayCommand();
  const vmm: VmmOptions = {
    ...(realVmm
      ? { command: realVmm, serialRelay, ...(vmmNetns ? { netns: vmmNetns } : {}) }
      : {
          command: sim.command,
          commandArgs: [...sim.args],
          serialRelay,
          ...(netns ? { netns } : {}),
          env: { MYHV_SIM_STRICT_TAPS: config.backend === 'local' ? '1' : '0', ...config.simEnv },
          stopGracefulMs: 1_000,
        }),
    ...config.vmm,
  };
  const newManager = () =>
    new VmManager({
      stateDir,
      runDir,
      network: new TapNetwork({ bridge: ops, tap: ops, nat: ops, bridgeName: BRIDGE, subnet: SUBNET }),
      ...(storage ? { storage } : {}),
      vmm,
      inventory: { bridge: ops, nat: ops },
      ...(confinement ? { confinement } : {}),
      // An in-memory network has no host sockets: the machine's own listeners (8080 on a dev box) must not count.
      ...(netns ? {} : { hostProbe: memoryHostProbe }),
    });
  const manager = newManager();
  return {
    manager,
    stateDir,
    runDir,
    kernel,
    shareDir,
    ...(memory ? { memory } : {}),
    ...(netns ? { netns } : {}),
    ops,
    store: new StateStore(stateDir),
    ipam: new IpAllocator({ dir: join(stateDir, 'ipam'), subnet: SUBNET }),
    newManager,
    child: {
      stateDir,
      runDir,
      backend: config.backend === 'memory' ? 'mosnet' : config.backend,
      ...(mosnetSocket ? { mosnetSocket } : {}),
      ...(netns ? { netns } : {}),
      ...(storage ? { storageRunDir } : {}),
      vmm,
      ...(confinement ? { confinement } : {}),
    },
    async [Symbol.asyncDispose]() {
      // Whatever a failed test left: stop VMMs and daemons through the manager's own repair path first (once its
      // background work, a standby VMM starting, is done).
      await manager.idle();
      await manager.reconcile().catch(() => undefined);
      for (const vm of await manager.list().catch(() => []))
        await manager.delete(vm.name, { force: true }).catch(() => undefined);
      for (const cleanup of cleanups.reverse()) await cleanup();
      // What the manager no longer lists (a VM whose record a test tore) may still run: its serial relay writes the
      // journal as its VMM dies, which would race the removal below.
      for (const pid of [...(await pidsMentioning(`${root}/`)), ...(await pidsMentioning(`${runDir}/`))]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
      await rm(root, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
      await rm(runDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    },
  };
}

/** Files and directories under `dir`, recursively, relative; for "nothing left behind" assertions. */
export async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(sub: string) {
    for (const entry of await readdir(join(dir, sub), { withFileTypes: true }).catch(() => [])) {
      const rel = sub ? `${sub}/${entry.name}` : entry.name;
      out.push(rel);
      if (entry.isDirectory()) await walk(rel);
    }
  }
  await walk('');
  return out.sort();
}

/** What is under `<stateDir>/vms` besides the store's own bookkeeping (changes token, listing cache). */
export async function vmTree(stateDir: string): Promise<string[]> {
  return (await listTree(join(stateDir, 'vms'))).filter(
    (f) => f !== '.changes' && f !== '.listing-cache.json',
  );
}

/** Pids whose command line mentions `needle` (VMMs by socket dir, virtiofsd by run dir). */
export async function pidsMentioning(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const { readFile } = await import('node:fs/promises');
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(needle)) pids.push(Number(entry));
  }
  return pids;
}

/** TAP-like interfaces with our prefix inside `netns`. */
export async function tapsInNetns(netns: string): Promise<string[]> {
  const { stdout } = await exec('ip', ['-n', netns, '-json', 'link', 'show']);
  return (JSON.parse(stdout) as { ifname: string }[])
    .map((l) => l.ifname)
    .filter((n) => /^myhv[0-9a-f]{11}$/.test(n));
}

/** Runs one manager operation in a separate process; resolves with its exit status and output. */
export async function runManagerChild(
  child: ChildConfig,
  request: { op: 'create'; spec: unknown } | { op: 'delete' | 'restore'; name: string },
  env: Record<string, string> = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const script = await bundledFixture('manager-child.ts');
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [script, JSON.stringify({ child, request })],
      { env: { ...process.env, ...env }, maxBuffer: 8 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const e = error as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
        resolve({
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          signal: e?.signal ?? null,
          stdout,
          stderr,
        });
      },
    );
  });
}

/** Waits (up to 10 s) for the probe guest's command line in a VM's serial log, and returns what it printed. */
export async function probeOutput(serialLog: string): Promise<ProbeGuestOutput> {
  const { readFile } = await import('node:fs/promises');
  let output = parseProbeGuestOutput('');
  for (let waited = 0; waited < 10_000 && output.cmdline === undefined; waited += 5) {
    output = parseProbeGuestOutput(await readFile(serialLog, 'utf8').catch(() => ''));
    if (output.cmdline === undefined) await new Promise((r) => setTimeout(r, 5));
  }
  return output;
}
