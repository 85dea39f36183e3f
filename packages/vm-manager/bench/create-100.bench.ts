// pnpm bench (in packages/vm-manager): 100 VMs created at once (simulator VMM, LocalOps in a fresh netns, no
// shares) against the same 100 created one at a time, with the time split per pipeline step; and list() of 1,000
// recorded VMs against reading them with one promise per file.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { benchVmmEnv, measure, renderTable, summarize, writeBenchSection } from '@my-hypervisor/bench-kit';
import {
  realVmmBinary,
  realVmmSkipReason,
  simulatorCommand,
  writeProbeGuest,
} from '@my-hypervisor/chv-client/testing';
import { LocalOps } from '@my-hypervisor/net-local';
import { TapNetwork } from '@my-hypervisor/net-ops';
import { parseVmSpec, type StepEvent, VmManager, type VmRecord } from '../src/index.js';
import { StateStore } from '../src/state-store.js';

const exec = promisify(execFile);
const COUNT = 100;
const round = (n: number, digits = 1) => Number(n.toFixed(digits));

async function createBatch(concurrent: boolean, realVmm?: string) {
  const netns = `myhv-bench-${process.pid}-${concurrent ? 'c' : 's'}${realVmm ? 'r' : ''}`;
  await exec('ip', ['netns', 'add', netns]);
  const root = await mkdtemp(join(tmpdir(), 'myhv-bench-'));
  // A confined VMM (the default as root) is a user of its own: let it through to the kernel.
  await chmod(root, 0o711);
  const runDir = await mkdtemp('/tmp/mhb-');
  const kernel = await writeProbeGuest(join(root, 'vmlinux'));
  const ops = new LocalOps({ netns });
  const sim = simulatorCommand({ from: 'dist' });
  const manager = new VmManager({
    stateDir: join(root, 'state'),
    runDir,
    network: new TapNetwork({
      bridge: ops,
      tap: ops,
      nat: ops,
      bridgeName: 'myhvbr0',
      subnet: '10.80.0.0/24',
    }),
    // A hundred simulators, or a hundred serial relays beside the real VMMs (Node processes both), starting at once
    // on 2 cores take ~10 s: more than the default wait.
    vmm: realVmm
      ? { command: realVmm, netns, stopGracefulMs: 0, readyTimeoutMs: 60_000 }
      : {
          command: sim.command,
          commandArgs: [...sim.args],
          netns,
          stopGracefulMs: 0,
          readyTimeoutMs: 60_000,
        },
  });
  const steps = new Map<string, number[]>();
  const onProgress = (e: StepEvent) => {
    if (e.phase !== 'done' || e.ms === undefined) return;
    steps.set(e.step, [...(steps.get(e.step) ?? []), e.ms]);
  };
  const specs = Array.from({ length: COUNT }, (_, i) => ({
    name: `vm${i}`,
    kernel,
    memory: '64M',
    network: { forwards: [{ hostPort: 30_000 + i, guestPort: 80 }] },
  }));
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  // Every create is awaited, failed or not, so that the batch is measured and cleaned up either way.
  const results = concurrent
    ? await Promise.allSettled(specs.map((s) => manager.create(s, { onProgress })))
    : [];
  if (!concurrent)
    for (const s of specs)
      results.push(
        await manager.create(s, { onProgress }).then(
          (value) => ({ status: 'fulfilled' as const, value }),
          (reason: unknown) => ({ status: 'rejected' as const, reason }),
        ),
      );
  const elapsed = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  const managerCpuMsPerVm = (cpu.user + cpu.system) / 1000 / COUNT;
  const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  const failed = failures.length
    ? `${failures.length} of ${COUNT} failed, first: ${(failures[0]!.reason as Error).message}`
    : undefined;
  if (failed) console.warn(`createBatch: ${failed}`);
  const vms = await manager.list();
  if (!failed && (vms.length !== COUNT || vms.some((v) => v.status !== 'running')))
    throw new Error('not every VM is running');
  await Promise.all(vms.map((v) => manager.delete(v.name, { force: true })));
  await ops.close();
  await exec('ip', ['netns', 'del', netns]);
  await rm(root, { recursive: true, force: true });
  await rm(runDir, { recursive: true, force: true });
  return { elapsed, steps, managerCpuMsPerVm, failed };
}

async function listBench() {
  const root = await mkdtemp(join(tmpdir(), 'myhv-bench-list-'));
  const store = new StateStore(root);
  await store.init();
  const spec = parseVmSpec({
    name: 'x',
    kernel: '/boot/vmlinux',
    network: { forwards: [{ hostPort: 8080, guestPort: 80 }] },
  });
  await Promise.all(
    Array.from({ length: 1000 }, async (_, i) => {
      const name = `vm${String(i).padStart(4, '0')}`;
      await store.claim(name);
      const record: VmRecord = {
        schema: 1,
        id: i.toString(16).padStart(12, '0'),
        name,
        spec: { ...spec, name },
        status: 'running',
        createdAt: new Date().toISOString(),
        updatedAt: new Date().toISOString(),
        resources: { ip: '10.62.0.2', tap: 'myhv0123456789a', forwards: [], shares: [] },
      };
      await store.write(record);
    }),
  );
  const manager = new VmManager({ stateDir: root, runDir: '/tmp/unused' });
  const ours = await measure(
    async () => {
      if ((await manager.list()).length !== 1000) throw new Error('list lost records');
    },
    { runs: 20, warmup: 2 },
  );
  const baseline = await measure(
    async () => {
      // The store's own files (`.changes`, `.listing-cache.json`) are not VMs.
      const names = (await fs.readdir(store.root)).filter((n) => !n.startsWith('.'));
      const records = await Promise.all(
        names.map(async (n) => JSON.parse(await fs.readFile(join(store.root, n, 'state.json'), 'utf8'))),
      );
      if (records.length !== 1000) throw new Error('baseline lost records');
    },
    { runs: 20, warmup: 2 },
  );
  await rm(root, { recursive: true, force: true });
  return { ours, baseline };
}

if (process.getuid?.() !== 0) {
  console.warn('vm-manager bench skipped: it needs root for a network namespace');
  process.exit(0);
}
const concurrent = await createBatch(true);
const sequential = await createBatch(false);
// The same 100 with the real cloud-hypervisor booting the probe guest, where this host can run guests.
const realEnv = benchVmmEnv();
const realSkip = realVmmSkipReason(realEnv);
if (realSkip) console.warn(`vm-manager bench: the real-VMM run skipped, because ${realSkip}`);
const real = realSkip ? undefined : await createBatch(true, realVmmBinary(realEnv));
const list = await listBench();
const rate = (ms: number) => round((COUNT / ms) * 1000);
const stepRows = [...concurrent.steps.entries()].map(([step, times]) => {
  const s = summarize(times);
  const seq = summarize(sequential.steps.get(step) ?? [0]);
  return [step, round(s.median), round(s.p95), round(seq.median)];
});
const target = rate(concurrent.elapsed) >= 20;
const body = [
  `${COUNT} VMs created (TAP + forward + simulator VMM + vm.create + vm.boot each), LocalOps in a fresh netns, no shares.`,
  '',
  renderTable(
    ['run', 'total (ms)', 'VMs/s', 'manager CPU per VM (ms)', 'target'],
    [
      [
        '100 at once (`Promise.all`)',
        round(concurrent.elapsed, 0),
        rate(concurrent.elapsed),
        round(concurrent.managerCpuMsPerVm),
        `≥ 20 VMs/s: ${target ? 'met' : 'missed'}`,
      ],
      real
        ? [
            '100 at once, real cloud-hypervisor (probe guest)',
            round(real.elapsed, 0),
            rate(real.elapsed),
            round(real.managerCpuMsPerVm),
            real.failed
              ? `≥ 50 VMs/s: not judged (${real.failed})`
              : `≥ 50 VMs/s: ${rate(real.elapsed) >= 50 ? 'met' : 'missed'}`,
          ]
        : ['100 at once, real cloud-hypervisor', '—', '—', '—', `not measured: ${realSkip}`],
      [
        'baseline: one at a time',
        round(sequential.elapsed, 0),
        rate(sequential.elapsed),
        round(sequential.managerCpuMsPerVm),
        '',
      ],
    ],
  ),
  '',
  'Time per pipeline step (ms; at once: every VM waits for its share of 2 cores, so steps overlap):',
  '',
  renderTable(['step', 'at once: median', 'at once: p95', 'one at a time: median'], stepRows),
  '',
  renderTable(
    ['list() of 1,000 recorded VMs', 'median (ms)', 'p95 (ms)', 'target'],
    [
      [
        'VmManager.list() (sync reads)',
        round(list.ours.median),
        round(list.ours.p95),
        `< 50 ms: ${list.ours.median < 50 ? 'met' : 'missed'}`,
      ],
      ['baseline: one promise per file', round(list.baseline.median), round(list.baseline.p95), ''],
    ],
  ),
].join('\n');
await writeBenchSection('vm-manager', {
  title: 'vm-manager: creating 100 VMs, listing 1,000',
  command: 'pnpm --filter @my-hypervisor/vm-manager bench',
  body,
});
console.log(body);
