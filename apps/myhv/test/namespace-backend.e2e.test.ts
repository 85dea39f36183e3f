import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eSkipReason, json, myhv, netnsExists, Sandbox } from './myhv.js';

const skip = e2eSkipReason();
if (skip) console.warn(`skipped: the namespace network backend e2e tests, because ${skip}`);

interface VmJson {
  id: string;
  name: string;
  pid: number;
  netns?: string;
  spec: { network: { isolation?: string; egress?: unknown } };
}

/** The inode of a network namespace: a named one (bind-mounted by `ip netns`) or a process's. */
const nsInode = (path: string) => execFileSync('stat', ['-L', '-c', '%i', path], { encoding: 'utf8' }).trim();

/**
 * The per-VM namespaces on the host (`myhv-[<6 hex>-]<vm id>`, what a create on the namespace backend makes): not every
 * namespace, since other suites running beside this one (turbo runs two packages at once) make their own.
 */
const namespaces = () =>
  execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(' ')[0]!)
    .filter((name) => /^myhv-(?:[0-9a-f]{6}-)?[0-9a-f]{12}$/.test(name));

describe.skipIf(skip !== undefined)('--net-backend namespace: each VM in its own network namespace', () => {
  const box = new Sandbox('nsb', { MYHV_NET_BACKEND: 'namespace' });
  const run = (...args: string[]) => myhv(args, box.env);
  const made: string[] = [];

  beforeAll(() => {
    box.create();
  });
  afterAll(async () => {
    for (const name of made) await run('vm', 'rm', '-f', name);
    box.destroy();
  });

  // First, while nothing runs: a VM just removed may still change the snapshot as its VMM exits.
  it('refuses a bad --egress or --isolation (exit 2, naming the flag) before anything is made', async () => {
    const before = box.snapshot();
    const namespacesBefore = namespaces();
    for (const [args, field] of [
      [['--egress', '10.0.0.0/8:tcp:0'], '--egress'],
      [['--egress', 'deny-all,10.0.0.0/8'], '--egress'],
      [['--egress', '10.0.0.0/8:icmp:8'], '--egress'],
      [['--isolation', 'strict'], '--isolation'],
    ] as [string[], string][]) {
      const result = await run('--json', 'vm', 'create', 'bad', '--kernel', box.kernel, ...args);
      expect(result.code, result.stderr).toBe(2);
      expect(JSON.parse(result.stderr).error).toMatchObject({ code: 'INVALID_ARGUMENT', field });
    }
    expect(box.snapshot()).toBe(before);
    expect(namespaces()).toEqual(namespacesBefore);
  });

  it('creates VMs in myhv-<hash>-<id> with their VMM inside, shows netns, policy and counters, and rm leaves none', async () => {
    const created: VmJson[] = [];
    for (const args of [
      ['open', '--kernel', box.kernel, '-p', '8080:80'],
      ['closed', '--kernel', box.kernel, '--egress', 'deny-all'],
    ]) {
      made.push(args[0]!);
      const result = await run('--json', 'vm', 'create', ...args);
      expect(result.code, result.stderr).toBe(0);
      created.push(json<{ vm: VmJson }>(result).vm);
    }
    for (const vm of created) {
      // A state directory other than the default one names its VM namespaces with a prefix of its own.
      const netns = vm.netns!;
      expect(netns).toMatch(new RegExp(`^myhv-[0-9a-f]{6}-${vm.id}$`));
      expect(namespaces()).toContain(netns);
      // `ip netns` bind-mounts the namespace: the same inode as the VMM's /proc/PID/ns/net when it runs inside.
      expect(nsInode(`/proc/${vm.pid}/ns/net`)).toBe(nsInode(`/run/netns/${netns}`));
    }

    const inspected = json<{ vm: VmJson }>(await run('--json', 'vm', 'inspect', 'closed')).vm;
    expect(inspected).toMatchObject({
      netns: created[1]!.netns,
      spec: { network: { egress: 'deny-all' } },
    });
    const human = await run('vm', 'inspect', 'closed');
    expect(human.stdout).toMatch(new RegExp(`netns:\\s+${created[1]!.netns}`));
    expect(human.stdout).toMatch(/isolation:\s+vm \(default\)/);
    expect(human.stdout).toMatch(/egress:\s+deny-all/);

    const stats = json<{ stats: { network?: { egressDenied: number; isolationDenied: number } } }>(
      await run('--json', 'vm', 'stats', 'closed'),
    ).stats;
    expect(stats.network).toEqual({ egressDenied: expect.any(Number), isolationDenied: expect.any(Number) });
    expect((await run('vm', 'stats', 'open')).stdout).toMatch(
      /network policy: \d+ egress denied, \d+ isolation denied/,
    );

    const removed = await run('vm', 'rm', '-f', 'open', 'closed');
    expect(removed.code, removed.stderr).toBe(0);
    for (const vm of created) expect(netnsExists(vm.netns!)).toBe(false);
  });

  it('gc deletes a leftover VM namespace of this state directory and leaves other ones alone', async () => {
    const created = await run('--json', 'vm', 'create', 'probe', '--kernel', box.kernel);
    expect(created.code, created.stderr).toBe(0);
    const prefix = json<{ vm: VmJson }>(created).vm.netns!.slice(0, -12);
    expect((await run('vm', 'rm', '-f', 'probe')).code).toBe(0);
    const ours = `${prefix}00000000abcd`;
    const another = 'myhv-00000000abcd'; // the default state directory's name for the same id
    execFileSync('ip', ['netns', 'add', ours]);
    execFileSync('ip', ['netns', 'add', another]);
    try {
      const gc = await run('--json', 'gc');
      expect(gc.code, gc.stderr).toBe(0);
      expect(JSON.stringify(json(gc))).toContain('00000000abcd');
      expect(netnsExists(ours)).toBe(false);
      expect(netnsExists(another)).toBe(true);
    } finally {
      execFileSync('ip', ['netns', 'del', another]);
      if (netnsExists(ours)) execFileSync('ip', ['netns', 'del', ours]);
    }
  });
});

describe.skipIf(skip !== undefined)(
  'network policy on the local backend, and a namespace network beside it',
  () => {
    const box = new Sandbox('nsl');
    const run = (...args: string[]) => myhv(args, box.env);
    const made: string[] = [];

    beforeAll(() => {
      box.create();
    });
    afterAll(async () => {
      for (const name of made) await run('vm', 'rm', '-f', name);
      box.destroy();
    });

    it('vm create --isolation vm (or --egress) on the local backend: exit 2 (INVALID_ARGUMENT), nothing made', async () => {
      made.push('plain');
      const plain = await run('vm', 'create', 'plain', '--kernel', box.kernel);
      expect(plain.code, plain.stderr).toBe(0);
      const before = box.snapshot();
      const namespacesBefore = namespaces();
      for (const [args, field] of [
        [['--isolation', 'vm'], 'network.isolation'],
        [['--egress', 'deny-all'], 'network.egress'],
      ] as [string[], string][]) {
        const result = await run('--json', 'vm', 'create', 'iso', '--kernel', box.kernel, ...args);
        expect(result.code, result.stderr).toBe(2);
        expect(JSON.parse(result.stderr).error).toMatchObject({
          code: 'INVALID_ARGUMENT',
          field,
        });
      }
      expect(box.snapshot()).toBe(before);
      expect(namespaces()).toEqual(namespacesBefore);
      // The open policy needs no enforcement: fine on any backend.
      made.push('open');
      const open = await run('vm', 'create', 'open', '--kernel', box.kernel, '--isolation', 'none');
      expect(open.code, open.stderr).toBe(0);

      // The default network is recorded as local: a later --net-backend namespace is a conflicting setting.
      const conflict = await run(
        '--json',
        '--net-backend',
        'namespace',
        'vm',
        'create',
        'x',
        '--kernel',
        box.kernel,
      );
      expect(conflict.code).toBe(2);
      expect(JSON.parse(conflict.stderr).error).toMatchObject({
        code: 'INVALID_ARGUMENT',
        field: '--net-backend',
      });
    });

    it('net create NAME --net-backend namespace beside a local default; its VMs get namespaces and policies', async () => {
      const lab = await run(
        '--json',
        '--net-backend',
        'namespace',
        'net',
        'create',
        'lab',
        '--subnet',
        '10.63.0.0/24',
      );
      expect(lab.code, lab.stderr).toBe(0);
      expect(json<{ network: { backend: string; nat: string } }>(lab).network).toMatchObject({
        backend: 'namespace',
        nat: 'nft',
      });
      // Inspected without the flag: the network's own record says which backend drives it, not the settings.
      const inspected = await run('--json', 'net', 'inspect', 'lab');
      expect(inspected.code, inspected.stderr).toBe(0);
      expect(json<{ backend: string }>(inspected).backend).toBe('namespace');
      expect((await run('net', 'inspect', 'lab')).stdout).toMatch(/namespace backend/);
      const mosnet = await run(
        '--net-backend',
        'mosnet',
        'net',
        'create',
        'other',
        '--subnet',
        '10.64.0.0/24',
      );
      expect(mosnet.code).toBe(2);

      made.push('inlab');
      const created = await run(
        '--json',
        'vm',
        'create',
        'inlab',
        '--kernel',
        box.kernel,
        '--network',
        'lab',
        '--isolation',
        'vm',
        '--egress',
        '192.0.2.0/24:tcp:443',
      );
      expect(created.code, created.stderr).toBe(0);
      const vm = json<{ vm: VmJson }>(created).vm;
      expect(vm.netns).toMatch(new RegExp(`^myhv-[0-9a-f]{6}-${vm.id}$`));
      expect(vm.spec.network).toMatchObject({
        isolation: 'vm',
        egress: [{ cidr: '192.0.2.0/24', proto: 'tcp', ports: [443] }],
      });
      expect(nsInode(`/proc/${vm.pid}/ns/net`)).toBe(nsInode(`/run/netns/${vm.netns}`));
      const removed = await run('vm', 'rm', '-f', 'inlab');
      expect(removed.code, removed.stderr).toBe(0);
      expect(netnsExists(vm.netns!)).toBe(false);
    });
  },
);
