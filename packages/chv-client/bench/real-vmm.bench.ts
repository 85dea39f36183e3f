// pnpm bench (in packages/chv-client): the real cloud-hypervisor, booting the probe guest, against the simulator
// in the same run. Spawn → API ready; vm.create → the guest's marker on the serial port; vm.info round trip;
// 100 VMMs spawned, created and booted at once; the stop ladder with a guest that ignores the power button.
// Where the binary is absent or /dev/kvm is unusable it says why and keeps any figures measured elsewhere.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { benchVmmEnv, renderTable, summarize, writeBenchSection } from '@my-hypervisor/bench-kit';
import { ChvProcess, type ChvProcessSpawnOptions } from '../src/index.js';
import {
  parseProbeGuestOutput,
  realVmmSkipReason,
  simulatorCommand,
  writeProbeGuest,
} from '../src/testing/index.js';

const SECTION = 'chv-client-real-vmm';
const TITLE = 'chv-client: the real cloud-hypervisor (probe guest) against the simulator';
const COMMAND =
  'MYHV_CLOUD_HYPERVISOR=../shared/cloud-hypervisor/bin/cloud-hypervisor pnpm --filter @my-hypervisor/chv-client bench';
const env = benchVmmEnv();
const round = (n: number, digits = 2) => Number(n.toFixed(digits));

const skipReason = realVmmSkipReason(env);
if (skipReason) {
  const docs = new URL('../../../docs/benchmarks.md', import.meta.url);
  const text = existsSync(docs) ? await readFile(docs, 'utf8') : '';
  const measured = new RegExp(`<!-- bench:${SECTION}:start -->[\\s\\S]*?\\| real`).test(text);
  const note = `Not measured: ${skipReason}.`;
  console.warn(`skipped: real-VMM benchmarks, because ${skipReason}`);
  if (!measured) await writeBenchSection(SECTION, { title: TITLE, command: COMMAND, body: note });
  process.exit(0);
}

const real = env.MYHV_CLOUD_HYPERVISOR as string;
const sim = simulatorCommand();
const dir = await mkdtemp('/tmp/chvb-');
const kernel = await writeProbeGuest(join(dir, 'probe.elf'));
type Kind = 'real' | 'simulator';
const spawnOptions = (kind: Kind): Pick<ChvProcessSpawnOptions, 'command' | 'commandArgs'> =>
  kind === 'real' ? { command: real } : { command: sim.command, commandArgs: [...sim.args] };
let seq = 0;

async function spawnVmm(kind: Kind) {
  const id = seq++;
  const started = performance.now();
  const vmm = await ChvProcess.spawn({ ...spawnOptions(kind), socketPath: join(dir, `${id}.sock`) });
  return { vmm, id, readyMs: performance.now() - started };
}

/** vm.create + vm.boot of the probe guest, resolving when its marker is on the serial port. */
async function bootProbe(vmm: ChvProcess, id: number, waitForMarker: boolean) {
  const serial = join(dir, `${id}.serial`);
  const started = performance.now();
  await vmm.client.vmCreate({
    payload: { kernel, cmdline: `myhv.bench=${id}` },
    memory: { size: 64 * 1024 * 1024 },
    serial: { mode: 'File', file: serial },
    console: { mode: 'Off' },
  });
  await vmm.client.vmBoot();
  while (waitForMarker && !parseProbeGuestOutput(await readFile(serial, 'utf8').catch(() => '')).halted) {
    if (performance.now() - started > 10_000) throw new Error(`VM ${id}: no probe marker after 10 s`);
    await sleep(1);
  }
  return performance.now() - started;
}

async function spawnAndBoot(runs: number) {
  const out = { real: { ready: [] as number[], boot: [] as number[] }, simulator: { ready: [] as number[] } };
  for (let i = 0; i < runs; i++) {
    for (const kind of ['real', 'simulator'] as const) {
      const { vmm, id, readyMs } = await spawnVmm(kind);
      out[kind].ready.push(readyMs);
      // The simulator runs no guest: only the real VMM's boot-to-marker is a figure.
      if (kind === 'real') out.real.boot.push(await bootProbe(vmm, id, true));
      await vmm.stop({ gracefulMs: 0 });
      await vmm.close();
    }
  }
  return out;
}

async function infoRoundTrips(calls: number) {
  const out: Record<Kind, number[]> = { real: [], simulator: [] };
  for (const kind of ['real', 'simulator'] as const) {
    const { vmm, id } = await spawnVmm(kind);
    await bootProbe(vmm, id, kind === 'real');
    for (let i = 0; i < 50; i++) await vmm.client.vmInfo();
    for (let i = 0; i < calls; i++) {
      const started = performance.now();
      await vmm.client.vmInfo();
      out[kind].push(performance.now() - started);
    }
    await vmm.stop({ gracefulMs: 0 });
    await vmm.close();
  }
  return out;
}

async function hundredAtOnce(kind: Kind, count: number) {
  const started = performance.now();
  const vmms = await Promise.all(
    Array.from({ length: count }, async () => {
      const { vmm, id } = await spawnVmm(kind);
      await bootProbe(vmm, id, kind === 'real');
      return vmm;
    }),
  );
  const elapsed = performance.now() - started;
  await Promise.all(
    vmms.map(async (vmm) => {
      await vmm.stop({ gracefulMs: 0 });
      await vmm.close();
    }),
  );
  return { elapsed, perSecond: (count / elapsed) * 1000 };
}

async function stopLadder(runs: number, gracefulMs: number) {
  const times: number[] = [];
  const rungs = new Map<string, number>();
  for (let i = 0; i < runs; i++) {
    const { vmm, id } = await spawnVmm('real');
    await bootProbe(vmm, id, true);
    const result = await vmm.stop({ gracefulMs });
    times.push(result.elapsedMs);
    rungs.set(result.rung, (rungs.get(result.rung) ?? 0) + 1);
    await vmm.close();
  }
  return { times: summarize(times), rungs };
}

try {
  const runs = Number(process.env.MYHV_BENCH_RUNS ?? 20);
  const boot = await spawnAndBoot(runs);
  const info = await infoRoundTrips(1_000);
  const burstReal = await hundredAtOnce('real', 100);
  const burstSim = await hundredAtOnce('simulator', 100);
  const ladder = await stopLadder(Math.min(runs, 10), 200);
  const s = {
    realReady: summarize(boot.real.ready),
    simReady: summarize(boot.simulator.ready),
    realBoot: summarize(boot.real.boot),
    realInfo: summarize(info.real),
    simInfo: summarize(info.simulator),
  };
  const burstOk = burstReal.perSecond >= 50;
  const body = [
    `Real: \`${real}\` (its \`vmm.ping\` version), guest: the probe guest (64 MiB, 1 vCPU). Simulator: \`chv-simulator\` as a separate process. Interleaved, ${runs} runs each.`,
    '',
    renderTable(
      ['measure', 'real p50 ms', 'real p95 ms', 'simulator p50 ms', 'simulator p95 ms'],
      [
        [
          'spawn → API ready',
          round(s.realReady.median),
          round(s.realReady.p95),
          round(s.simReady.median),
          round(s.simReady.p95),
        ],
        [
          'vm.create → probe marker on serial',
          round(s.realBoot.median),
          round(s.realBoot.p95),
          '— (no guest)',
          '—',
        ],
        [
          'vm.info round trip (1,000 calls)',
          round(s.realInfo.median, 3),
          round(s.realInfo.p95, 3),
          round(s.simInfo.median, 3),
          round(s.simInfo.p95, 3),
        ],
      ],
    ),
    '',
    renderTable(
      ['100 VMMs spawned, created and booted at once', 'elapsed ms', 'VMs/s', 'target', 'result'],
      [
        [
          'real (each to its probe marker)',
          round(burstReal.elapsed, 0),
          round(burstReal.perSecond, 1),
          '≥ 50 VMs/s',
          burstOk ? 'met' : 'NOT met',
        ],
        ['simulator (no guest)', round(burstSim.elapsed, 0), round(burstSim.perSecond, 1), '—', '—'],
      ],
    ),
    '',
    `Stop ladder with a guest that ignores the power button (gracefulMs 200): p50 ${round(ladder.times.median)} ms, p95 ${round(ladder.times.p95)} ms; rungs: ${[...ladder.rungs].map(([rung, n]) => `${rung} ×${n}`).join(', ')}.`,
  ].join('\n');
  await writeBenchSection(SECTION, { title: TITLE, command: COMMAND, body });
  console.log(body);
  if (!burstOk) process.exitCode = 1;
} finally {
  await rm(dir, { recursive: true, force: true });
}
