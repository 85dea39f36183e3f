// pnpm bench (in packages/vm-manager): one 64 MiB VM restored from its snapshot (kill the VMM, fresh VMM,
// vm.restore resumed) against the same VM stopped and started (fresh VMM, vm.create, vm.boot), in the same run, no
// shares. On the simulator (in-memory network), and on the real cloud-hypervisor where this host can run guests:
// there with the local network backend in a throwaway namespace (TAPs made by the manager, as on a real host),
// confined (the default as root) and not.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { benchVmmEnv, renderTable, summarize, writeBenchSection } from '@my-hypervisor/bench-kit';
import {
  realVmmBinary,
  realVmmSkipReason,
  simulatorCommand,
  writeProbeGuest,
} from '@my-hypervisor/chv-client/testing';
import { LocalOps } from '@my-hypervisor/net-local';
import { createMemoryNetOps, TapNetwork } from '@my-hypervisor/net-ops';
import {
  type ConfinementOptions,
  confinementSupport,
  type StepEvent,
  VmManager,
  type VmmOptions,
} from '../src/index.js';

const exec = promisify(execFile);
const RUNS = 30;
const WARMUP = 3;
const round = (n: number, digits = 1) => Number(n.toFixed(digits));

const root = await mkdtemp(join(tmpdir(), 'myhv-bench-restore-'));
// A confined VMM (the default as root) is a user of its own: let it through to the kernel.
await chmod(root, 0o711);
const kernel = await writeProbeGuest(join(root, 'vmlinux'));

interface Measured {
  restore: ReturnType<typeof summarize>;
  restart: ReturnType<typeof summarize>;
  steps: Map<string, number[]>;
}

/**
 * Restores one 64 MiB VM from its snapshot and stops → starts it, interleaved, on the given VMM: on an in-memory
 * network, or with `netns` on the local backend inside that namespace (where the VMM runs too).
 */
async function measure(
  label: string,
  vmm: VmmOptions,
  confinement?: ConfinementOptions,
  netns?: string,
): Promise<Measured> {
  const runDir = await mkdtemp('/tmp/mhr-');
  const ops = netns ? new LocalOps({ netns }) : createMemoryNetOps();
  const manager = new VmManager({
    stateDir: join(root, `state-${label}`),
    runDir,
    network: new TapNetwork({
      bridge: ops,
      tap: ops,
      nat: ops,
      bridgeName: 'myhvbr0',
      subnet: '10.81.0.0/24',
    }),
    vmm: netns ? { ...vmm, netns } : vmm,
    ...(netns ? { inventory: { bridge: ops, nat: ops } } : {}),
    ...(confinement ? { confinement } : {}),
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
    // From a quiet machine each time: with `vmm.standby`, the standby that the last start or restore began after it
    // returned is up (the wait is nothing otherwise).
    await manager.idle();
    let started = performance.now();
    const restored = await manager.restore('web', { from: snapshot.id, onProgress });
    const restoreMs = performance.now() - started;
    if (restored.status !== 'running') throw new Error('restore did not leave the VM running');
    await manager.idle();
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
  await rm(runDir, { recursive: true, force: true });
  console.log(`${label}: done`);
  return { restore: summarize(restoreTimes), restart: summarize(restartTimes), steps };
}

const sim = simulatorCommand({ from: 'dist' });
const simulated = await measure('simulator', {
  command: sim.command,
  commandArgs: [...sim.args],
  env: { MYHV_SIM_STRICT_TAPS: '0' },
  stopGracefulMs: 0,
});
// The same on the real cloud-hypervisor booting the probe guest, where this host can run guests.
const realEnv = benchVmmEnv();
const realSkip = realVmmSkipReason(realEnv) ?? (process.getuid?.() === 0 ? undefined : 'not root');
if (realSkip) console.warn(`vm-manager restore bench: the real-VMM runs skipped, because ${realSkip}`);
const confineSkip = realSkip ? undefined : confinementSupport().problems.join('; ') || undefined;
if (confineSkip) console.warn(`vm-manager restore bench: the confined run skipped, because ${confineSkip}`);
const real: { label: string; measured: Measured }[] = [];
if (!realSkip) {
  const command = realVmmBinary(realEnv)!;
  const runs: [string, VmmOptions, ConfinementOptions][] = [
    ['unconfined, memory on demand (the default unconfined as root)', { command }, { mode: 'off' }],
    ['unconfined, memory copied', { command, restoreMemory: 'copy' }, { mode: 'off' }],
    ['unconfined, memory on demand, vmm.standby', { command, standby: true }, { mode: 'off' }],
    ...(confineSkip
      ? []
      : ([
          ['confined, memory copied (the default as root)', { command }, { mode: 'on' }],
          ['confined, memory copied, vmm.standby', { command, standby: true }, { mode: 'on' }],
          ...(existsSync('/dev/userfaultfd')
            ? [
                [
                  'confined with confinement.userfaultfd, memory on demand',
                  { command },
                  { mode: 'on', userfaultfd: true },
                ],
                [
                  'confined with confinement.userfaultfd, memory on demand, vmm.standby',
                  { command, standby: true },
                  { mode: 'on', userfaultfd: true },
                ],
              ]
            : []),
        ] as [string, VmmOptions, ConfinementOptions][])),
  ];
  for (const [label, options, confinement] of runs) {
    // The local backend in a namespace of its own: the manager makes the TAP, the VMM opens it there.
    const netns = `myhv-bench-restore-${process.pid}`;
    await exec('ip', ['netns', 'add', netns]);
    try {
      await exec('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
      real.push({
        label,
        measured: await measure(`real-${real.length}`, { ...options, stopGracefulMs: 0 }, confinement, netns),
      });
    } finally {
      await exec('ip', ['netns', 'del', netns]);
    }
  }
}
await rm(root, { recursive: true, force: true });

const row = (name: string, s: ReturnType<typeof summarize>, target: string) => [
  name,
  round(s.median),
  round(s.p95),
  round(s.min),
  target,
];
// Judged on a confined VMM (the default as root) set up for restore latency — standby VMMs, memory on demand — where
// it ran, else unconfined with a standby, else the first real run, else the simulator. Every restore row shows its
// own verdict, the defaults' too.
const judgedRun =
  real.find((r) => r.label === 'confined with confinement.userfaultfd, memory on demand, vmm.standby') ??
  real.find((r) => r.label === 'unconfined, memory on demand, vmm.standby') ??
  real[0];
const judged = judgedRun?.measured ?? simulated;
const defaultRun = real.find((r) => r.label.includes('(the default as root)'));
const verdict = (m: Measured) => `≤ 50 ms: ${m.restore.median <= 50 ? 'met' : 'missed'}`;
const stepRows = (m: Measured) =>
  [...m.steps.entries()].map(([step, times]) => {
    const s = summarize(times);
    return [step, round(s.median), round(s.p95)];
  });
const body = [
  `One VM (64 MiB, 1 vCPU, TAP, no shares); ${RUNS} runs each after ${WARMUP} warm-up, restore and stop → start interleaved. Both start from a running VM and end with it running again; restore kills the running VMM (the snapshot replaces its state), stop → start stops it without a guest grace period. Runs marked \`vmm.standby\` keep an idle VMM (and its held serial relay) ready for the VM's next restore, started in the background after each start or restore returned; every operation is timed from a quiet machine (\`VmManager.idle()\` first). The real cloud-hypervisor runs with the local network backend in a throwaway namespace (the manager makes the TAP; on a host's own namespace the VMM would not go through \`ip netns exec\`); the simulator on an in-memory network. The target is judged on ${judgedRun ? `the real cloud-hypervisor, ${judgedRun.label}` : 'the simulator'}.`,
  '',
  renderTable(
    ['run', 'median (ms)', 'p95 (ms)', 'min (ms)', 'target'],
    [
      ...(real.length > 0
        ? real.flatMap(({ label, measured }) => [
            row(
              `restore → running, real cloud-hypervisor, ${label}`,
              measured.restore,
              verdict(measured) + (measured === judged ? ' (judged)' : ''),
            ),
            row(
              `baseline: stop → start, real cloud-hypervisor, ${label.split(',')[0]}${label.includes('vmm.standby') ? ', vmm.standby' : ''}`,
              measured.restart,
              '',
            ),
          ])
        : [['restore with the real cloud-hypervisor', '—', '—', '—', `not measured: ${realSkip}`]]),
      row('restore → running, simulator VMM', simulated.restore, judgedRun ? '' : verdict(simulated)),
      row('baseline: stop → start, simulator VMM', simulated.restart, ''),
    ],
  ),
  '',
  `Time per restore step (ms; \`vmm-stop\` sends the running VMM SIGKILL — with a standby, it also renames the standby's directory into the VM's; \`network-ensure\`, \`forwards-ensure\` and \`vmm-gone\` — the wait for the old VMM to exit — run beside the \`vmm\` step, which with a standby only checks it runs; \`serial-relay\` releases the standby's held relay), ${judgedRun ? `real cloud-hypervisor, ${judgedRun.label}` : 'simulator VMM'}:`,
  '',
  renderTable(['step', 'median', 'p95'], stepRows(judged)),
  '',
  ...(defaultRun && defaultRun !== judgedRun
    ? [
        `Without a standby (${defaultRun.label}) the \`vmm\` step starts the next VMM and its serial relay:`,
        '',
        renderTable(['step', 'median', 'p95'], stepRows(defaultRun.measured)),
        '',
      ]
    : []),
  'The simulator is a Node process (its start-up dominates its `vmm` step), writes only `config.json` and',
  "`state.json` and maps no guest memory; the real VMM starts in milliseconds and reads the guest's 64 MiB back",
  '(on demand: it runs at once and loads the pages in the background).',
].join('\n');
await writeBenchSection('vm-manager-restore', {
  title: 'vm-manager: restore from a snapshot vs stop → start',
  command: 'pnpm --filter @my-hypervisor/vm-manager bench',
  body,
});
console.log(body);
