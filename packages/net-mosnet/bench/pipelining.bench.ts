// 10,000 calls against the reference server on memory ops: pipelined on one connection vs one at a time behind a
// lock (how the original Rust client worked), measured in the same run. Writes its section of docs/benchmarks.md.
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { measure, renderTable, type Sample, summarize, writeBenchSection } from '@my-hypervisor/bench-kit';
import { MosnetOps } from '../src/index.js';

const CALLS = 10_000;
const RUNS = 7;
const TARGET_RATIO = 5;
const TARGET_RATE = 20_000;
const bridge = { name: 'benchbr0', address: '10.232.0.1/24' };

/** A promise chain that lets one task run at a time, in order. */
class Lock {
  #tail: Promise<unknown> = Promise.resolve();
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}

/** The daemon's CPU time so far, in ms. */
function daemonCpu(daemon: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    daemon.once('message', (ms) => resolve(ms as number));
    daemon.send('cpu');
  });
}

function ownCpu(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

interface Result {
  readonly sample: Sample;
  /** CPU time per call of each process. */
  readonly clientUs: number;
  readonly daemonUs: number;
}

/**
 * Runs the contenders alternately, one run each per round after one warm-up each, so that load from elsewhere on
 * the machine falls on both alike. Wall time per run, and the CPU time each process spent per call.
 */
async function compare(
  daemon: ChildProcess,
  contenders: readonly (() => Promise<unknown>)[],
): Promise<Result[]> {
  for (const run of contenders) await run();
  const times = contenders.map(() => [] as number[]);
  const cpu = contenders.map(() => ({ client: 0, daemon: 0 }));
  for (let round = 0; round < RUNS; round++) {
    for (const [i, run] of contenders.entries()) {
      const [client0, daemon0] = [ownCpu(), await daemonCpu(daemon)];
      const { runs } = await measure(run, { runs: 1, warmup: 0 });
      const [client1, daemon1] = [ownCpu(), await daemonCpu(daemon)];
      times[i]!.push(runs[0]!);
      cpu[i]!.client += client1 - client0;
      cpu[i]!.daemon += daemon1 - daemon0;
    }
  }
  const perCall = (ms: number) => (ms * 1000) / (RUNS * CALLS);
  return contenders.map((_, i) => ({
    sample: summarize(times[i]!),
    clientUs: perCall(cpu[i]!.client),
    daemonUs: perCall(cpu[i]!.daemon),
  }));
}

/**
 * How far the two processes ran side by side: pipelined wall time per call against their CPU per call, added and
 * alone. On a busy machine they take turns, and the wall time is the sum.
 */
function overlapNote(serialised: Result, pipelined: Result): string {
  const wallUs = (result: Result) => (result.sample.median * 1000) / CALLS;
  const sum = pipelined.clientUs + pipelined.daemonUs;
  const busier = Math.max(pipelined.clientUs, pipelined.daemonUs);
  return [
    `Per pipelined call: ${wallUs(pipelined).toFixed(1)} µs of wall time, ${sum.toFixed(1)} µs of CPU in the two`,
    `processes together, ${busier.toFixed(1)} µs in the busier one (the bound when each has a core to itself; the`,
    `baseline's calls take ${wallUs(serialised).toFixed(1)} µs each, one after another).`,
  ].join(' ');
}

const dir = await mkdtemp(join(tmpdir(), 'mosnet-bench-'));
const socketPath = join(dir, 'mosnet.sock');
const daemon = fork(new URL('./serve-memory-ops.ts', import.meta.url), [socketPath], { stdio: 'inherit' });
try {
  await new Promise<void>((resolve, reject) => {
    daemon.once('message', () => resolve());
    daemon.once('exit', (code) => reject(new Error(`the server exited with ${code}`)));
  });
  await using ops = new MosnetOps({ socketPath, timeoutMs: 60_000 });
  await ops.ensureBridge(bridge);
  const load = loadavg()[0]!.toFixed(1);

  const lock = new Lock();
  const [serialised, pipelined] = (await compare(daemon, [
    () => Promise.all(Array.from({ length: CALLS }, () => lock.run(() => ops.ensureBridge(bridge)))),
    () => Promise.all(Array.from({ length: CALLS }, () => ops.ensureBridge(bridge))),
  ])) as [Result, Result];

  const rate = (sample: Sample) => Math.round(CALLS / (sample.median / 1000));
  const bestRate = (sample: Sample) => Math.round(CALLS / (sample.min / 1000));
  const ratio = rate(pipelined.sample) / rate(serialised.sample);
  const bestRatio = bestRate(pipelined.sample) / bestRate(serialised.sample);
  const verdict = (ok: boolean) => (ok ? 'met' : 'missed');
  const row = (name: string, result: Result) => [
    name,
    Math.round(result.sample.median),
    Math.round(result.sample.p95),
    rate(result.sample).toLocaleString('en'),
    bestRate(result.sample).toLocaleString('en'),
    result.clientUs.toFixed(1),
    result.daemonUs.toFixed(1),
  ];
  const body = [
    `${CALLS.toLocaleString('en')} \`ensureBridge\` calls (\`mosnet.bridge.add\`) from one \`MosnetOps\` to \`createMosnetServer\` on \`createMemoryNetOps()\` in a child process, over one Unix socket; ${RUNS} runs of each, alternating, after one warm-up each. The CPU columns are each process's CPU time per call, which load from elsewhere on the machine inflates far less than wall time. Load average (1 min) at the start: ${load} on ${cpus().length} CPUs.`,
    '',
    renderTable(
      [
        'client',
        'median ms',
        'p95 ms',
        'calls/s (median)',
        'calls/s (best run)',
        'client CPU µs/call',
        'daemon CPU µs/call',
      ],
      [
        row('one at a time behind a lock (baseline)', serialised),
        row('pipelined on one connection', pipelined),
      ],
    ),
    '',
    `Target: pipelined ≥ ${TARGET_RATIO}× the baseline's throughput and ≥ ${TARGET_RATE.toLocaleString('en')} calls/s.`,
    `Result (medians): ${ratio.toFixed(2)}× (${verdict(ratio >= TARGET_RATIO)}), ${rate(pipelined.sample).toLocaleString('en')} calls/s (${verdict(rate(pipelined.sample) >= TARGET_RATE)}); best runs: ${bestRatio.toFixed(2)}×.`,
    '',
    overlapNote(serialised, pipelined),
  ].join('\n');
  console.log(body);
  await writeBenchSection('net-mosnet-pipelining', {
    title: 'net-mosnet: pipelined JSON-RPC calls vs one at a time',
    command: 'pnpm --filter @my-hypervisor/net-mosnet bench',
    body,
  });
} finally {
  daemon.disconnect();
  await new Promise((resolve) => daemon.once('exit', resolve));
  await rm(dir, { recursive: true, force: true });
}
