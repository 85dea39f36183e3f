// pnpm bench (in packages/cluster): cluster mode's coordination on a 3-member etcd on loopback (src/testing/etcd.ts), three
// hosts each with its agent, one placement controller. Backends are in memory (a create is instant), so what is
// measured is the coordination itself: placing and reporting 300 VMs, and failover after a host dies, against the
// fair baselines of the same run — the same 300 assignments written by one client with plain puts (no election, no
// conditions, no agents), and the lease TTL. Writes its section of docs/benchmarks.md.
import { renderTable, summarize, writeBenchSection } from '@my-hypervisor/bench-kit';
import {
  Cluster,
  type ClusterVmSpec,
  type HostBackend,
  type Membership,
  runHostAgent,
  runPlacement,
} from '../src/index.js';
import { EtcdCluster, etcdSkipReason } from '../src/testing/index.js';

const VMS = 300;
const RUNS = 3;
const TTL_S = 2;
const GiB = 2 ** 30;

const skip = etcdSkipReason();
if (skip) {
  console.log(`cluster bench skipped: ${skip}`);
  process.exit(0);
}

class MemoryHost implements HostBackend {
  readonly vms = new Set<string>();
  async list() {
    return [...this.vms].map((name) => ({ name, status: 'running' }));
  }
  async create(vm: ClusterVmSpec) {
    this.vms.add(vm.name);
    return { status: 'running' };
  }
  async start() {
    return { status: 'running' };
  }
  async stop() {
    return { status: 'stopped' };
  }
  async delete(name: string) {
    this.vms.delete(name);
  }
}

const spec = (name: string): ClusterVmSpec => ({ name, spec: { name }, cpus: 1, memoryBytes: 256 * 2 ** 20 });
const waitFor = async (check: () => Promise<boolean>, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

const etcd = await EtcdCluster.start();
const place: number[] = [];
const plain: number[] = [];
const failover: number[] = [];
let decisions = 0;
try {
  for (let run = 0; run < RUNS; run++) {
    const prefix = `/myhv-bench-${process.pid}-${run}/`;
    const connect = () => new Cluster({ endpoints: etcd.endpoints, prefix, timeoutMs: 5_000 });
    const clients = [connect(), connect(), connect()];
    const backends = clients.map(() => new MemoryHost());
    const stop = new AbortController();
    const members: Membership[] = [];
    const agents: Promise<void>[] = [];
    for (const [i, client] of clients.entries()) {
      members.push(
        await client.register(
          { id: `h${i}`, address: `h${i}`, capacity: { cpus: 256, memoryBytes: 256 * GiB } },
          { ttlSeconds: TTL_S },
        ),
      );
      agents.push(
        runHostAgent(client, { membership: members[i]!, backend: backends[i]!, signal: stop.signal }),
      );
    }
    const controllerStop = new AbortController();
    let stats = { decisions: 0 };
    const controller = runPlacement(clients[0]!, {
      id: 'bench',
      signal: controllerStop.signal,
      onStats: (s) => {
        stats = s;
      },
    });
    const admin = connect();
    // 1. Place and "start" 300 VMs: created by 5 clients at once, until every one reports running.
    const writers = Array.from({ length: 5 }, connect);
    const started = performance.now();
    await Promise.all(
      writers.map((w, k) =>
        Promise.all(Array.from({ length: VMS / 5 }, (_, j) => w.createVm(spec(`vm-${k}-${j}`)))),
      ),
    );
    await waitFor(
      async () => (await admin.vms()).filter((vm) => vm.status?.status === 'running').length === VMS,
    );
    place.push(performance.now() - started);
    decisions += stats.decisions;
    // Baseline: the same number of assignments as plain puts by one client (no election, conditions or agents).
    const baseline = new Cluster({ endpoints: etcd.endpoints, prefix: `${prefix}plain/`, timeoutMs: 5_000 });
    const t0 = performance.now();
    await Promise.all(Array.from({ length: VMS }, (_, i) => baseline.createVm(spec(`p-${i}`))));
    plain.push(performance.now() - t0);
    baseline.close();
    // 2. Failover: h2 dies without revoking; time until its VMs all run (reported) on the others.
    const lost = backends[2]!.vms.size;
    const died = performance.now();
    await members[2]!.leave({ revoke: false });
    clients[2]!.close();
    await waitFor(async () => {
      const vms = await admin.vms();
      return vms.filter((vm) => vm.status?.status === 'running' && vm.status.host !== 'h2').length === VMS;
    });
    failover.push(performance.now() - died);
    console.log(
      `run ${run + 1}: placed ${VMS} in ${Math.round(place.at(-1)!)} ms, failover of ${lost} in ${Math.round(failover.at(-1)!)} ms`,
    );
    controllerStop.abort();
    stop.abort();
    await Promise.allSettled([controller, ...agents]);
    for (const m of members.slice(0, 2)) await m.leave();
    for (const c of [...clients.slice(0, 2), ...writers, admin]) c.close();
  }
} finally {
  await etcd.stop();
}

const p = summarize(place);
const b = summarize(plain);
const f = summarize(failover);
const round = (n: number) => Math.round(n);
const table = renderTable(
  ['3 hosts, 3-member etcd on loopback', 'median', 'min', 'runs'],
  [
    [
      `place and report running: ${VMS} VMs from 5 clients (ms)`,
      round(p.median),
      round(p.min),
      place.map(round).join(', '),
    ],
    [`  VMs placed and reported running per second (median run)`, round((VMS / p.median) * 1000), '—', '—'],
    [
      `baseline: ${VMS} plain conditional creates by one client (ms)`,
      round(b.median),
      round(b.min),
      plain.map(round).join(', '),
    ],
    [
      `failover: a host dies → its VMs running elsewhere (ms), lease TTL ${TTL_S * 1000} ms`,
      round(f.median),
      round(f.min),
      failover.map(round).join(', '),
    ],
  ],
);
const body = `Three hosts (each a \`Cluster\` client, \`register\` with a ${TTL_S} s lease and \`runHostAgent\` over an in-memory
backend whose create is instant) and one \`runPlacement\` controller, against a 3-member etcd 3.4 on loopback
(src/testing/etcd.ts: Debian's etcd-server, heartbeat 50 ms, election timeout 500 ms). ${RUNS} runs, each on fresh keys.
What is measured is cluster mode's coordination, not the VMMs: every VM is created by one of 5 clients (a
conditional create each), watched by the controller, assigned in a transaction on the revisions read, watched by its
host's agent, "created", and its status written in a transaction fenced on the assignment and the host's lease; the
clock stops when all ${VMS} report running. The baseline is the least etcd work that could record the same VMs: ${VMS}
conditional creates from one client, nothing else. Failover: one host's lease is left to expire (no revoke, no more
keep-alives) and the clock stops when every VM reports running on another host; the lease was last renewed up to a
third of the TTL before, so the expiry comes TTL − TTL/3 … TTL after, plus etcd's expiry sweep (every 500 ms).
The controller decides a whole pass before it writes, and writes its assignments at once (each its own
transaction); each agent creates and reports up to 16 VMs at a time. ${decisions} placement decisions in all.

${table}`;
console.log(body);
await writeBenchSection('cluster', {
  title: 'Cluster mode: placing 300 VMs over 3 hosts on etcd, failover after a host dies',
  command: 'pnpm --filter @my-hypervisor/cluster bench',
  body,
});
