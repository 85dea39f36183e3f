/*
 * Network setup of 100 VMs at once through TapNetwork over LocalOps (batched) against a baseline that does the same
 * operations with one `ip`/`nft` process each, both in fresh network namespaces; then the cost of the 10th versus
 * the 1000th port forward. Needs root. Run: pnpm --filter @my-hypervisor/net-local bench
 */
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { renderTable, type Sample, summarize, writeBenchSection } from '@my-hypervisor/bench-kit';
import { type PortForwardRule, TapNetwork } from '@my-hypervisor/net-ops';
import { execa } from 'execa';
import { type CommandRunner, execaRunner, LocalOps } from '../src/index.js';
import { OneProcessPerOperation } from './one-process-per-operation.js';

const VMS = 100;
const RUNS = Number(process.env.MYHV_BENCH_RUNS ?? 5);
const FORWARD_SAMPLES = Number(process.env.MYHV_BENCH_FORWARD_SAMPLES ?? 30);
const BRIDGE = 'benchbr0';
const SUBNET = '10.240.0.0/16';

if (process.getuid?.() !== 0) {
  console.warn('skipped: the net-local benchmark because it needs root (network namespaces, TAPs, nftables)');
  process.exit(0);
}

let nsCounter = 0;
async function withNetns<T>(body: (netns: string) => Promise<T>): Promise<T> {
  const netns = `myhv-nlbench-${process.pid}-${++nsCounter}`;
  await execa('ip', ['netns', 'add', netns]);
  try {
    return await body(netns);
  } finally {
    await execa('ip', ['netns', 'del', netns], { reject: false });
  }
}

/** Counts the processes a runner starts. */
function counting(runner: CommandRunner): { runner: CommandRunner; count: () => number } {
  let n = 0;
  return {
    runner: (file, args, options) => {
      n++;
      return runner(file, args, options);
    },
    count: () => n,
  };
}

const vm = (i: number) => {
  const ipv4 = `10.240.${Math.floor((i + 2) / 256)}.${(i + 2) % 256}`;
  const forward: PortForwardRule = { protocol: 'tcp', hostPort: 20000 + i, guestIp: ipv4, guestPort: 22 };
  return { vmId: `bench-vm-${i}`, ipv4, forwards: [forward] };
};

interface SetupRun {
  readonly ms: number;
  readonly processes: number;
}

/** One timed setup of 100 VMs (TAP + attach + up + one forward each) in a fresh namespace; the bridge is made first. */
async function setupRun(kind: 'batched' | 'baseline'): Promise<SetupRun> {
  return withNetns(async (netns) => {
    const counter = counting(execaRunner);
    const ops =
      kind === 'batched'
        ? new LocalOps({ netns, runner: counter.runner })
        : new OneProcessPerOperation({ netns, runner: counter.runner });
    const net = new TapNetwork({
      bridge: ops,
      tap: ops,
      nat: ops,
      bridgeName: BRIDGE,
      subnet: SUBNET,
      mtu: 1500,
    });
    // Same untimed preparation for both: the bridge and the nft table exist, as on a host that already runs VMs.
    await new LocalOps({ netns }).ensureBridge(net.bridgeSpec);
    await net.ensureBridge();
    const before = counter.count();
    const start = performance.now();
    const attached = await Promise.all(Array.from({ length: VMS }, (_, i) => net.attach(vm(i))));
    const ms = performance.now() - start;
    if (attached.some((a) => !a.created)) throw new Error('a TAP existed before the run');
    const check = new LocalOps({ netns });
    const [ports, forwards] = await Promise.all([check.listBridgePorts(BRIDGE), check.listPortForwards()]);
    if (ports.length !== VMS || forwards.length !== VMS) {
      throw new Error(
        `${kind}: expected ${VMS} ports and forwards, got ${ports.length} and ${forwards.length}`,
      );
    }
    return { ms, processes: counter.count() - before };
  });
}

const forwardRule = (i: number): PortForwardRule => ({
  protocol: 'tcp',
  hostPort: 30000 + i,
  guestIp: `10.240.${Math.floor(i / 250) + 1}.${(i % 250) + 2}`,
  guestPort: 22,
});

/**
 * The time of one `addPortForward` with 9 and with 999 forwards already installed, each in its own namespace. The
 * samples alternate between the two so that load from elsewhere on the machine hits both alike; each add is
 * followed by an untimed remove of the same forward.
 */
async function forwardCosts(
  nat: 'nft' | 'iptables',
  samples: number,
): Promise<{ tenth: Sample; thousandth: Sample }> {
  return withNetns((small) =>
    withNetns(async (large) => {
      const setups = await Promise.all(
        [
          [small, 10],
          [large, 1000],
        ].map(async ([netns, installed]) => {
          const ops = new LocalOps({ netns: netns as string, nat });
          await ops.ensureBridge({ name: BRIDGE, address: '10.240.0.1/16' });
          const count = (installed as number) - 1;
          await Promise.all(Array.from({ length: count }, (_, i) => ops.addPortForward(forwardRule(i))));
          return { ops, probe: forwardRule(count), count, times: [] as number[] };
        }),
      );
      for (let i = 0; i < samples + 2; i++) {
        for (const setup of setups) {
          const start = performance.now();
          const { created } = await setup.ops.addPortForward(setup.probe);
          const elapsed = performance.now() - start;
          if (!created) throw new Error('the probe forward was already there');
          if (i >= 2) setup.times.push(elapsed); // two warm-up rounds
          await setup.ops.removePortForward(setup.probe);
        }
      }
      for (const setup of setups) {
        if ((await setup.ops.listPortForwards()).length !== setup.count)
          throw new Error('forward count drifted');
      }
      return { tenth: summarize(setups[0]!.times), thousandth: summarize(setups[1]!.times) };
    }),
  );
}

const round = (n: number, digits = 1) => Number(n.toFixed(digits));

async function main(): Promise<void> {
  const load = `Load average (1 min) at the start: ${loadavg()[0]!.toFixed(1)} on ${cpus().length} CPUs.`;
  const batched: SetupRun[] = [];
  const baseline: SetupRun[] = [];
  await setupRun('batched'); // warm-up: module loading, first nft table in a namespace
  for (let r = 0; r < RUNS; r++) {
    batched.push(await setupRun('batched'));
    baseline.push(await setupRun('baseline'));
    console.log(
      `run ${r + 1}/${RUNS}: batched ${round(batched.at(-1)!.ms)} ms, baseline ${round(baseline.at(-1)!.ms)} ms`,
    );
  }
  const a = summarize(batched.map((r) => r.ms));
  const b = summarize(baseline.map((r) => r.ms));
  const speedup = b.median / a.median;
  const perVm = a.median / VMS;

  const nft = await forwardCosts('nft', FORWARD_SAMPLES);
  const iptables = await forwardCosts('iptables', FORWARD_SAMPLES);
  const nftRatio = nft.thousandth.median / nft.tenth.median;
  const iptablesRatio = iptables.thousandth.median / iptables.tenth.median;
  const met = (ok: boolean) => (ok ? 'met' : '**not met**');

  const body = [
    `Setting up the network of ${VMS} VMs at once (TAP + attach + up + one port forward each) through \`TapNetwork\``,
    'over `LocalOps` (nft driver), against a baseline in the same run that performs the same operations through the',
    'same `TapNetwork` with one `ip`/`nft` process per operation (`bench/one-process-per-operation.ts`). Each run uses',
    `a fresh network namespace whose bridge and nft table exist beforehand (untimed); ${RUNS} runs each, alternating.`,
    load,
    '',
    renderTable(
      ['', 'median ms', 'p95 ms', 'min ms', 'per VM (median)', 'processes per run'],
      [
        [
          'LocalOps (batched)',
          round(a.median),
          round(a.p95),
          round(a.min),
          `${round(perVm, 2)} ms`,
          batched[0]!.processes,
        ],
        [
          'baseline (one process per operation)',
          round(b.median),
          round(b.p95),
          round(b.min),
          `${round(b.median / VMS, 2)} ms`,
          baseline[0]!.processes,
        ],
      ],
    ),
    '',
    `- Speed-up: **${round(speedup)}×** (target ≥ 10×: ${met(speedup >= 10)}).`,
    `- Amortized per VM: **${round(perVm, 2)} ms** (target < 2 ms: ${met(perVm < 2)}).`,
    '',
    `Cost of one \`addPortForward\` with 9 versus 999 forwards installed (median of ${FORWARD_SAMPLES} samples
alternating between two namespaces, each add followed by an untimed remove):`,
    '',
    renderTable(
      ['driver', '10th forward ms', '1000th forward ms', '1000th / 10th'],
      [
        [
          'nft (one map element)',
          round(nft.tenth.median, 2),
          round(nft.thousandth.median, 2),
          round(nftRatio, 2),
        ],
        [
          'iptables (for comparison)',
          round(iptables.tenth.median, 2),
          round(iptables.thousandth.median, 2),
          round(iptablesRatio, 2),
        ],
      ],
    ),
    '',
    `- nft: the 1000th forward costs **${round(nftRatio, 2)}×** the 10th (target ≤ 1.5×: ${met(nftRatio <= 1.5)}).`,
    '- iptables is shown for comparison only: it reads and rewrites rules, so its cost grows with their number.',
  ].join('\n');

  console.log(`\n${body}\n`);
  await writeBenchSection('net-local', {
    title: 'net-local: 100 VMs at once, and the 1000th port forward',
    command: 'pnpm --filter @my-hypervisor/net-local bench',
    body,
  });
}

await main();
