import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderTable, summarize, writeBenchSection } from '@my-hypervisor/bench-kit';
import { ChvClient, waitForApiReady } from '../src/index.js';
import { simulatorCommand } from '../src/testing/index.js';

// CPU (user + system, all threads) of one simulator process, the figure that limits how many VMMs a manager can
// start per second on a small host. Measured from inside the child by a preload that reports its rusage at exit,
// the same preload for the bare-node baseline, so the comparison is like for like and not wall time (which other
// work on the machine distorts).
const sim = simulatorCommand();
const dir = await mkdtemp(join(tmpdir(), 'chv-cpu-'));
const preload = join(dir, 'report-cpu.cjs');
await writeFile(
  preload,
  `process.on('exit', () => {
  const u = process.resourceUsage();
  require('node:fs').writeFileSync(process.env.MYHV_CPU_REPORT, String((u.userCPUTime + u.systemCPUTime) / 1000));
});\n`,
);
const kernel = join(dir, 'vmlinux');
await writeFile(kernel, 'not a kernel');
const round = (ms: number) => Number(ms.toFixed(1));

/** Runs `args` under node with the preload; `drive` talks to it while it runs. Returns its CPU in ms. */
async function cpuOf(
  args: readonly string[],
  run: number,
  drive?: (socketPath: string, exited: Promise<void>) => Promise<void>,
) {
  const report = join(dir, `cpu-${run}.txt`);
  const child = spawn(process.execPath, ['--require', preload, ...args], {
    stdio: 'ignore',
    env: { ...process.env, MYHV_CPU_REPORT: report },
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await drive?.(join(dir, `api-${run}.sock`), exited);
  await exited;
  return Number(await readFile(report, 'utf8'));
}

/** What a VM manager does with one VMM: wait for it, create, boot, read the state, shut the VMM down. */
async function cycle(socketPath: string, exited: Promise<void>) {
  await using client = new ChvClient({ socketPath });
  await waitForApiReady(socketPath, { client, exited, timeoutMs: 30_000 });
  await client.vmCreate({
    payload: { kernel, cmdline: 'console=ttyS0' },
    cpus: { boot_vcpus: 1, max_vcpus: 1 },
    memory: { size: 256 << 20 },
    serial: { mode: 'Null' },
    console: { mode: 'Off' },
  });
  await client.vmBoot();
  if ((await client.vmInfo()).state !== 'Running') throw new Error('the simulated VM did not boot');
  await client.vmmShutdown();
}

try {
  const runs = Number(process.env.MYHV_BENCH_RUNS ?? 30);
  const bare: number[] = [];
  const version: number[] = [];
  const full: number[] = [];
  for (let i = 0; i < runs; i++) {
    // Interleaved, so load on the machine hits all three alike.
    bare.push(await cpuOf(['-e', ''], i * 3));
    version.push(await cpuOf([...sim.args, '--version'], i * 3 + 1));
    full.push(
      await cpuOf(
        [...sim.args, '--api-socket', `path=${join(dir, `api-${i * 3 + 2}.sock`)}`],
        i * 3 + 2,
        cycle,
      ),
    );
  }
  const b = summarize(bare);
  const v = summarize(version);
  const f = summarize(full);
  const budget = 20;
  const versionOk = v.median - b.median <= budget;
  const cycleOk = f.median - b.median <= budget;
  const body = [
    `Simulator: \`${[sim.command, ...sim.args].map((a) => a.split('/').at(-1)).join(' ')}\`. CPU (user + system) of each process, ${runs} runs each, interleaved; the cycle is ping → vm.create → vm.boot → vm.info → vmm.shutdown over the API socket.`,
    '',
    renderTable(
      ['process', 'p50 CPU ms', 'p95 CPU ms', 'min CPU ms', 'over bare node (p50)', 'target', 'result'],
      [
        ['`node -e ""` (baseline)', round(b.median), round(b.p95), round(b.min), '—', '—', '—'],
        [
          'simulator `--version`',
          round(v.median),
          round(v.p95),
          round(v.min),
          `+${round(v.median - b.median)} ms`,
          `≤ +${budget} ms`,
          versionOk ? 'met' : 'NOT met',
        ],
        [
          'simulator, one VM cycle',
          round(f.median),
          round(f.p95),
          round(f.min),
          `+${round(f.median - b.median)} ms`,
          `≤ +${budget} ms`,
          cycleOk ? 'met' : 'NOT met',
        ],
      ],
    ),
    '',
    'The bin is one CommonJS file without zod: it checks request bodies against JSON Schema generated from the zod schemas (src/testing/sim-body-schemas.ts). When it loaded zod and built every schema at start, the same machine measured about +50 ms for `--version` and +68 ms for the cycle.',
  ].join('\n');
  await writeBenchSection('chv-client-simulator-cpu', {
    title: 'chv-client: CPU per simulator process',
    command: 'pnpm --filter @my-hypervisor/chv-client bench',
    body,
  });
  console.log(body);
  if (!versionOk || !cycleOk) process.exitCode = 1;
} finally {
  await rm(dir, { recursive: true, force: true });
}
