// pnpm bench (in packages/vm-manager): what confinement costs per VM. The same VM created and deleted by two
// managers in the same run, interleaved, one confining its VMMs (the default as root) and one not; and, to see the
// cost apart from the simulator's start-up noise, the confinement chain alone (unshare, sh, setpriv) around a program
// that exits at once, against running that program directly.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { benchVmmEnv, renderTable, summarize, writeBenchSection } from '@my-hypervisor/bench-kit';
import { confineCommand } from '@my-hypervisor/chv-client';
import {
  realVmmBinary,
  realVmmSkipReason,
  simulatorCommand,
  writeProbeGuest,
} from '@my-hypervisor/chv-client/testing';
import { LocalOps } from '@my-hypervisor/net-local';
import {
  type BridgeOps,
  createMemoryNetOps,
  type NatOps,
  TapNetwork,
  type TapOps,
} from '@my-hypervisor/net-ops';
import { type ConfinementMode, confinementSupport, type StepEvent, VmManager } from '../src/index.js';

const RUNS = 60;
const WARMUP = 3;
const CHAIN_RUNS = 200;
const round = (n: number, digits = 1) => Number(n.toFixed(digits));

const support = confinementSupport();
if (support.problems.length > 0) {
  console.warn(`confinement bench skipped: ${support.problems.join('; ')}`);
  process.exit(0);
}

const root = await mkdtemp(join(tmpdir(), 'myhv-bench-confine-'));
await chmod(root, 0o711);
const kernel = await writeProbeGuest(join(root, 'vmlinux'));
const sim = simulatorCommand({ from: 'dist' });
const cleanups: (() => Promise<unknown>)[] = [];
const exec = promisify(execFile);

// The real cloud-hypervisor where this host can run guests (what users run; the simulator is a Node process whose
// own start-up under the exec chain varies by more than confinement costs), with the local network backend in a
// throwaway namespace: the manager makes each TAP, owned by the VMM's user when confined.
const realEnv = benchVmmEnv();
const realSkip = realVmmSkipReason(realEnv);
if (realSkip)
  console.warn(`confinement bench: on the simulator, because the real VMM cannot run here: ${realSkip}`);
const realCommand = realSkip ? undefined : realVmmBinary(realEnv);
let netns: string | undefined;
if (realCommand) {
  netns = `myhv-bench-confine-${process.pid}`;
  await exec('ip', ['netns', 'add', netns]);
  await exec('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  cleanups.push(() => exec('ip', ['netns', 'del', netns!]));
}
const vmmLabel = realCommand
  ? 'the real cloud-hypervisor, local network backend in a namespace'
  : 'simulator VMM, in-memory network';

async function makeManager(mode: ConfinementMode, subnet: string, bridgeName: string): Promise<VmManager> {
  const runDir = await mkdtemp('/tmp/mhc-');
  cleanups.push(() => rm(runDir, { recursive: true, force: true }));
  const ops: BridgeOps & TapOps & NatOps = netns ? new LocalOps({ netns }) : createMemoryNetOps();
  return new VmManager({
    stateDir: join(root, `state-${mode}`),
    runDir,
    network: new TapNetwork({ bridge: ops, tap: ops, nat: ops, bridgeName, subnet }),
    ...(netns ? { inventory: { bridge: ops, nat: ops } } : {}),
    vmm: realCommand
      ? { command: realCommand, netns: netns!, stopGracefulMs: 0 }
      : {
          command: sim.command,
          commandArgs: [...sim.args],
          env: { MYHV_SIM_STRICT_TAPS: '0' },
          stopGracefulMs: 0,
        },
    confinement: { mode },
  });
}

const managers = {
  on: await makeManager('on', '10.82.0.0/24', 'myhvbr0'),
  off: await makeManager('off', '10.83.0.0/24', 'myhvbr1'),
};
type Which = keyof typeof managers;
/** One scenario: the same VM created and deleted by both managers, interleaved; step times per manager. */
async function scenario(network: boolean) {
  const times = {
    on: { create: [] as number[], delete: [] as number[] },
    off: { create: [] as number[], delete: [] as number[] },
  };
  const steps = { on: new Map<string, number[]>(), off: new Map<string, number[]>() };
  for (let i = 0; i < WARMUP + RUNS; i++) {
    // Alternating which goes first, so both see the same machine.
    for (const which of i % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
      const manager = managers[which];
      const seen = new Map<string, number>();
      const onProgress = (e: StepEvent) => {
        if (e.phase === 'done' && e.ms !== undefined) seen.set(`${e.op} ${e.step}`, e.ms);
      };
      let started = performance.now();
      await manager.create(
        { name: 'web', kernel, memory: '64M', network: { enabled: network } },
        { onProgress },
      );
      const createMs = performance.now() - started;
      started = performance.now();
      await manager.delete('web', { force: true, onProgress });
      const deleteMs = performance.now() - started;
      if (i < WARMUP) continue;
      times[which].create.push(createMs);
      times[which].delete.push(deleteMs);
      for (const [step, ms] of seen) steps[which].set(step, [...(steps[which].get(step) ?? []), ms]);
    }
  }
  const stepMedian = (which: Which, step: string) => {
    const list = steps[which].get(step);
    return list ? summarize(list).median : 0;
  };
  return {
    network,
    create: { on: summarize(times.on.create), off: summarize(times.off.create) },
    delete: { on: summarize(times.on.delete), off: summarize(times.off.delete) },
    // What confinement adds, as step medians (the simulator's start-up jitter in vm.create/boot does not count):
    // its own `uid` step, and what it adds inside `vmm` (cgroup, chown, the exec chain).
    prepareExtra:
      stepMedian('on', 'create uid') + stepMedian('on', 'create vmm') - stepMedian('off', 'create vmm'),
    releaseExtra:
      stepMedian('on', 'delete confinement-release') +
      stepMedian('on', 'delete vmm-stop') -
      stepMedian('off', 'delete vmm-stop'),
  };
}
const withTun = await scenario(true);
const noTun = await scenario(false);

/** Runs `file argv` to its exit; resolves with the wall time. */
function timeRun(file: string, argv: readonly string[]): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve(performance.now() - started) : reject(new Error(`${file} exited ${code}`)),
    );
  });
}

const ids = { uid: 1_500_999_999, gid: 1_500_999_999 };
const plainChain = confineCommand('/bin/true', [], ids);
const tunChain = confineCommand('/bin/true', [], { ...ids, tunDevice: true });
// The node the confined manager prepared (where the state directory allows device nodes), bound instead.
const tunNode = join(root, 'state-on', 'confinement', 'dev', 'tun');
const boundChain = existsSync(tunNode)
  ? confineCommand('/bin/true', [], { ...ids, tunDevice: true, tunNode })
  : undefined;
const chain = { direct: [] as number[], plain: [] as number[], tun: [] as number[], bound: [] as number[] };
for (let i = 0; i < CHAIN_RUNS; i++) {
  chain.direct.push(await timeRun('/bin/true', []));
  chain.plain.push(await timeRun(plainChain.file, plainChain.argv));
  chain.tun.push(await timeRun(tunChain.file, tunChain.argv));
  if (boundChain) chain.bound.push(await timeRun(boundChain.file, boundChain.argv));
}

for (const cleanup of cleanups) await cleanup();
await rm(root, { recursive: true, force: true });

const direct = summarize(chain.direct).median;
const plainExtra = summarize(chain.plain).median - direct;
const tunExtra = summarize(chain.tun).median - direct;
const boundExtra = boundChain ? summarize(chain.bound).median - direct : undefined;
const rows = [withTun, noTun].flatMap((r) => {
  const what = r.network ? 'with a network (here: own tun node)' : 'without a network (setpriv alone)';
  return [
    [`create ${what}, confined`, round(r.create.on.median), round(r.create.on.p95), round(r.create.on.min)],
    [
      `baseline: create ${what}, not confined`,
      round(r.create.off.median),
      round(r.create.off.p95),
      round(r.create.off.min),
    ],
    [`delete ${what}, confined`, round(r.delete.on.median), round(r.delete.on.p95), round(r.delete.on.min)],
    [
      `baseline: delete ${what}, not confined`,
      round(r.delete.off.median),
      round(r.delete.off.p95),
      round(r.delete.off.min),
    ],
  ];
});
const verdict = (ms: number) => `≤ 10 ms: ${ms <= 10 ? 'met' : 'missed'}`;
const body = [
  `One VM (64 MiB, 1 vCPU, no shares), ${vmmLabel}; per scenario ${RUNS} creates and deletes with confinement on and ${RUNS} with it off, interleaved after ${WARMUP} warm-up each. Cgroups here: ${support.cgroups?.kind ?? 'none'}; this host's /dev/net/tun is ${support.tun ? 'not usable by other users (0600), so a confined VMM with a network gets its own tun node' : 'usable by everyone, so no VMM needs its own tun node'}.`,
  '',
  renderTable(['run', 'median (ms)', 'p95 (ms)', 'min (ms)'], rows),
  '',
  renderTable(
    ['what confinement adds per VM (medians)', 'ms', 'target'],
    [
      [
        'create with a network: `uid` step + `vmm` step over the unconfined `vmm` step (uid, cgroup, chown, exec chain with the tun node)',
        round(withTun.prepareExtra),
        verdict(withTun.prepareExtra),
      ],
      [
        'create without a network — the same chain every VM gets where /dev/net/tun is 0666 (most distributions): setpriv alone',
        round(noTun.prepareExtra),
        verdict(noTun.prepareExtra),
      ],
      [
        'delete: `confinement-release` + `vmm-stop` over the unconfined `vmm-stop`',
        round(withTun.releaseExtra),
        '',
      ],
      [`exec chain alone, setpriv → /bin/true over /bin/true (${CHAIN_RUNS} runs)`, round(plainExtra, 2), ''],
      [
        `exec chain alone, unshare → sh (mount, mknod) → setpriv → /bin/true over /bin/true`,
        round(tunExtra, 2),
        '',
      ],
      [
        'exec chain alone, unshare → sh (mount --bind of the prepared node) → setpriv → /bin/true over /bin/true (what the manager runs here)',
        boundExtra === undefined
          ? 'not measured: the state directory refuses device nodes'
          : round(boundExtra, 2),
        '',
      ],
    ],
  ),
  '',
  'Whole creates vary (VMM start-up, the serial relay, the network) by more than confinement costs, so',
  'the target is judged on step times, which the manager measures around exactly the work confinement adds. Every',
  `program run costs ~${round(direct, 1)} ms on this machine (software virtualisation); the tun node needs more:`,
  'unshare, sh and a bind mount of a node the manager made once in its state directory (or, where that file system',
  'is nodev, a tmpfs and mknod). Where /dev/net/tun is 0666 none of them runs. Moving a process between cgroups',
  'waits for an RCU grace period when none ran lately (11 ms median here, up to 24): the manager starts that wait',
  "when it prepares the VM's cgroup (a move of its own process to the cgroup it is in, which changes nothing), writes",
  "the VMM's pid while the VMM starts, and waits for both. A new VM's uid is recorded by the next step's write, not",
  'one of its own. A mount namespace made once and entered with nsenter would save two programs, but would not see',
  'mounts made after it on hosts whose / is not shared (this one).',
].join('\n');
await writeBenchSection('vm-manager-confinement', {
  title: 'vm-manager: confined vs unconfined VMMs (create and delete)',
  command: 'pnpm --filter @my-hypervisor/vm-manager bench',
  body,
});
console.log(body);
