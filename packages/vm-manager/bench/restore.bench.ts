// pnpm bench (in packages/vm-manager): one 64 MiB VM restored from its snapshot (stop the VMM, fresh VMM,
// vm.restore, resume) against the same VM stopped and started (fresh VMM, vm.create, vm.boot), in the same run:
// simulator VMM, in-memory network, no shares.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { renderTable, summarize, writeBenchSection } from '@my-hypervisor/bench-kit';
import { realVmmSkipReason, simulatorCommand, writeProbeGuest } from '@my-hypervisor/chv-client/testing';
import { createMemoryNetOps, TapNetwork } from '@my-hypervisor/net-ops';
import { type StepEvent, VmManager } from '../src/index.js';

const RUNS = 30;
const WARMUP = 3;
const round = (n: number, digits = 1) => Number(n.toFixed(digits));

const root = await mkdtemp(join(tmpdir(), 'myhv-bench-restore-'));
// A confined VMM (the default as root) is a user of its own: let it through to the kernel.
await chmod(root, 0o711);
const runDir = await mkdtemp('/tmp/mhr-');
const kernel = await writeProbeGuest(join(root, 'vmlinux'));
const ops = createMemoryNetOps();
const sim = simulatorCommand({ from: 'dist' });
const manager = new VmManager({
  stateDir: join(root, 'state'),
  runDir,
  network: new TapNetwork({ bridge: ops, tap: ops, nat: ops, bridgeName: 'myhvbr0', subnet: '10.81.0.0/24' }),
  vmm: {
    command: sim.command,
    commandArgs: [...sim.args],
    env: { MYHV_SIM_STRICT_TAPS: '0' },
    stopGracefulMs: 0,
  },
});

await manager.create({ name: 'web', kernel, memory: '64M' });
const snapshot = await manager.snapshot('web');
const steps = new Map<string, number[]>();
const onProgress = (e: StepEvent) => {
  if (e.op !== 'restore' || e.phase !== 'done' || e.ms === undefined) return;
  steps.set(e.step, [...(steps.get(e.step) ?? []), e.ms]);
};

// Interleaved, so both see the same machine load.
const restoreTimes: number[] = [];
const restartTimes: number[] = [];
for (let i = 0; i < WARMUP + RUNS; i++) {
  let started = performance.now();
  const restored = await manager.restore('web', { from: snapshot.id, onProgress });
  const restoreMs = performance.now() - started;
  if (restored.status !== 'running') throw new Error('restore did not leave the VM running');
  started = performance.now();
  await manager.stop('web', { gracefulMs: 0 });
  const info = await manager.start('web');
  const restartMs = performance.now() - started;
  if (info.status !== 'running') throw new Error('start did not leave the VM running');
  if (i < WARMUP) {
    steps.clear();
    continue;
  }
  restoreTimes.push(restoreMs);
  restartTimes.push(restartMs);
}
await manager.delete('web', { force: true });
await rm(root, { recursive: true, force: true });
await rm(runDir, { recursive: true, force: true });

const restore = summarize(restoreTimes);
const restart = summarize(restartTimes);
const realSkip = realVmmSkipReason();
if (realSkip) console.warn(`vm-manager restore bench: the real-VMM run skipped, because ${realSkip}`);
const body = [
  `One VM (64 MiB, 1 vCPU, TAP, no shares), simulator VMM, in-memory network; ${RUNS} runs each after ${WARMUP} warm-up, interleaved. Both start from a running VM and end with it running again; the stop is immediate (no guest grace period).`,
  '',
  renderTable(
    ['run', 'median (ms)', 'p95 (ms)', 'min (ms)', 'target'],
    [
      [
        'restore → running (`vm restore`: stop, fresh VMM, vm.restore, vm.resume)',
        round(restore.median),
        round(restore.p95),
        round(restore.min),
        `≤ 50 ms: ${restore.median <= 50 ? 'met' : 'missed'}`,
      ],
      [
        'baseline: stop → start (fresh VMM, vm.create, vm.boot)',
        round(restart.median),
        round(restart.p95),
        round(restart.min),
        '',
      ],
      [
        'restore with the real cloud-hypervisor',
        '—',
        '—',
        '—',
        `not measured: ${realSkip ?? 'not wired yet'}`,
      ],
    ],
  ),
  '',
  'Time per restore step (ms; `vmm-stop` is the stop that precedes it):',
  '',
  renderTable(
    ['step', 'median', 'p95'],
    [...steps.entries()].map(([step, times]) => {
      const s = summarize(times);
      return [step, round(s.median), round(s.p95)];
    }),
  ),
  '',
  'Most of both runs is the `vmm` step: spawning the simulator, a Node process, and waiting for its API socket;',
  'cloud-hypervisor itself starts in a few milliseconds, so the 50 ms target can only be judged against the real',
  'binary, which cannot run here. The simulator writes only `config.json` and `state.json` and maps no guest',
  "memory, so `vm.restore` measures the manager's and the API's share; a real 64 MiB guest adds reading its memory.",
].join('\n');
await writeBenchSection('vm-manager-restore', {
  title: 'vm-manager: restore from a snapshot vs stop → start',
  command: 'pnpm --filter @my-hypervisor/vm-manager bench',
  body,
});
console.log(body);
