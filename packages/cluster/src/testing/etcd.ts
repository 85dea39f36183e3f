import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ETCD = process.env.MYHV_ETCD ?? '/usr/bin/etcd';
const SETPRIV = '/usr/bin/setpriv';

/** Why the etcd tests cannot run here, or undefined. */
export function etcdSkipReason(): string | undefined {
  try {
    execFileSync(ETCD, ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return `no etcd at ${ETCD} (scripts/setup installs Debian's etcd-server; MYHV_ETCD names another)`;
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

/**
 * A 3-member etcd cluster on loopback, in a throwaway directory, for tests and benchmarks. Members can be stopped
 * and started again.
 */
export class EtcdCluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'myhv-etcd-'));
  readonly members: { name: string; client: string; peer: string; process?: ChildProcess }[] = [];

  static async start(size = 3): Promise<EtcdCluster> {
    const cluster = new EtcdCluster();
    for (let i = 0; i < size; i++) {
      cluster.members.push({
        name: `m${i}`,
        client: `http://127.0.0.1:${await freePort()}`,
        peer: `http://127.0.0.1:${await freePort()}`,
      });
    }
    await Promise.all(cluster.members.map((_, i) => cluster.startMember(i)));
    return cluster;
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.client);
  }

  /** Starts member `i` (again, on its data directory) and waits until it serves its client port. */
  async startMember(i: number): Promise<void> {
    const member = this.members[i]!;
    const initial = this.members.map((m) => `${m.name}=${m.peer}`).join(',');
    // Under setpriv --pdeathsig, a member dies with the test process even when that is killed from outside.
    const [command, ...prefix] = existsSync(SETPRIV) ? [SETPRIV, '--pdeathsig', 'KILL', ETCD] : [ETCD];
    const child = spawn(
      command!,
      [
        ...prefix,
        '--name',
        member.name,
        '--data-dir',
        join(this.dir, member.name),
        '--listen-client-urls',
        member.client,
        '--advertise-client-urls',
        member.client,
        '--listen-peer-urls',
        member.peer,
        '--initial-advertise-peer-urls',
        member.peer,
        '--initial-cluster',
        initial,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        `myhv-test-${process.pid}`,
        // Fast elections, so a test of a lost member takes a second, not ten.
        '--heartbeat-interval',
        '50',
        '--election-timeout',
        '500',
        '--logger',
        'zap',
        '--log-level',
        'error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    member.process = child;
    const port = Number(new URL(member.client).port);
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`etcd ${member.name} exited:\n${stderr}`);
      const up = await new Promise<boolean>((resolve) => {
        const probe = createServer();
        probe.once('error', () => resolve(true));
        probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(false)));
      });
      if (up) return;
      if (Date.now() > deadline) throw new Error(`etcd ${member.name} did not listen:\n${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Kills member `i` (SIGKILL) and waits for it to be gone. */
  async killMember(i: number): Promise<void> {
    const child = this.members[i]!.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((_, i) => this.killMember(i)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
