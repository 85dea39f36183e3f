// pnpm exec tsx --conditions=@my-hypervisor/source bench/journal-create-20.bench.ts (in packages/vm-manager):
// 20 VMs created one at a time and 20 at once (simulator VMM, in-memory network), with the event journal on and
// off, to show that journaling every event costs nothing measurable. Prints a table; writes no files.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { simulatorCommand, writeProbeGuest } from '@my-hypervisor/chv-client/testing';
import { createMemoryNetOps, TapNetwork } from '@my-hypervisor/net-ops';
import { VmManager } from '../src/index.js';

const COUNT = 20;
const ROUNDS = Number(process.env.ROUNDS ?? 3);

async function createBatch(concurrent: boolean, journal: boolean): Promise<number> {
  const root = await mkdtemp(join(tmpdir(), 'myhv-jbench-'));
  // A confined VMM (the default as root) is a user of its own: let it through to the kernel.
  await chmod(root, 0o711);
  const runDir = await mkdtemp('/tmp/mjb-');
  const kernel = await writeProbeGuest(join(root, 'vmlinux'));
  const ops = createMemoryNetOps();
  const sim = simulatorCommand({ from: 'dist' });
  const manager = new VmManager({
    stateDir: join(root, 'state'),
    runDir,
    network: new TapNetwork({
      bridge: ops,
      tap: ops,
      nat: ops,
      bridgeName: 'myhvbr0',
      subnet: '10.81.0.0/24',
    }),
    vmm: {
      command: sim.command,
      commandArgs: [...sim.args],
      stopGracefulMs: 0,
      env: { MYHV_SIM_STRICT_TAPS: '0' },
    },
    hostProbe: { localAddresses: async () => ['127.0.0.1'], listening: async () => new Set<number>() },
    ...(journal ? {} : { journal: false }),
  });
  const specs = Array.from({ length: COUNT }, (_, i) => ({
    name: `vm${i}`,
    kernel,
    memory: '64M',
    network: { forwards: [{ hostPort: 31_000 + i, guestPort: 80 }] },
  }));
  const started = performance.now();
  if (concurrent) await Promise.all(specs.map((s) => manager.create(s)));
  else for (const s of specs) await manager.create(s);
  const elapsed = performance.now() - started;
  await Promise.all((await manager.list()).map((v) => manager.delete(v.name, { force: true })));
  await rm(root, { recursive: true, force: true });
  await rm(runDir, { recursive: true, force: true });
  return elapsed;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows: string[] = [];
for (const concurrent of [false, true]) {
  const on: number[] = [];
  const off: number[] = [];
  // Interleaved, so drift on a shared machine hits both alike.
  for (let i = 0; i < ROUNDS; i++) {
    off.push(await createBatch(concurrent, false));
    on.push(await createBatch(concurrent, true));
  }
  const label = concurrent ? `${COUNT} at once` : `${COUNT} one at a time`;
  rows.push(
    `${label}: journal off median ${median(off).toFixed(0)} ms [${off.map((x) => x.toFixed(0)).join(', ')}]; ` +
      `on median ${median(on).toFixed(0)} ms [${on.map((x) => x.toFixed(0)).join(', ')}]`,
  );
}
console.log(rows.join('\n'));
