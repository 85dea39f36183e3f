import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eSkipReason, inProcessOnly, json, myhv, Sandbox } from './myhv.js';

const skip = e2eSkipReason();
if (skip) console.warn(`skipped: network records and named networks, because ${skip}`);

interface NetworkJson {
  name: string;
  bridge: string;
  subnet: string;
  gateway: string;
  vms: number;
  recorded: boolean;
}

/** The addresses on `bridge` inside the sandbox's namespace. */
function bridgeAddresses(box: Sandbox, bridge: string): string[] {
  const out = execFileSync('ip', ['-n', box.name, '-j', 'addr', 'show', 'dev', bridge], { encoding: 'utf8' });
  return (JSON.parse(out) as { addr_info: { family: string; local: string; prefixlen: number }[] }[])
    .flatMap((l) => l.addr_info)
    .filter((a) => a.family === 'inet')
    .map((a) => `${a.local}/${a.prefixlen}`);
}

describe.skipIf(skip !== undefined)('network records: settings drift refused, named networks', () => {
  const box = new Sandbox('nets');
  const run = (args: string[], env: Record<string, string> = {}) => myhv(args, { ...box.env, ...env });

  beforeAll(() => {
    box.create();
  });
  afterAll(() => {
    box.destroy();
  });

  it('the first VM records the default network; a different --subnet, MYHV_SUBNET or --bridge is refused', async () => {
    const created = await run(['vm', 'create', 'a', '--kernel', box.kernel, '-p', '8080:80']);
    expect(created.code, created.stderr).toBe(0);
    const networks = json<{ networks: NetworkJson[] }>(await run(['--json', 'net', 'ls'])).networks;
    expect(networks).toEqual([
      expect.objectContaining({
        name: 'default',
        bridge: 'myhvbr0',
        subnet: '10.62.0.0/24',
        recorded: true,
        vms: 1,
      }),
    ]);

    const before = box.snapshot();
    const refusals: [string[], Record<string, string>, RegExp][] = [
      [
        ['--subnet', '10.99.0.0/24', 'vm', 'create', 'b', '--kernel', box.kernel],
        {},
        /error: --subnet: .*10\.62\.0\.0\/24/,
      ],
      [
        ['vm', 'create', 'b', '--kernel', box.kernel],
        { MYHV_SUBNET: '10.99.0.0/24' },
        /error: MYHV_SUBNET: .*10\.62\.0\.0\/24/,
      ],
      [['--bridge', 'other', 'vm', 'create', 'b', '--kernel', box.kernel], {}, /--bridge: .*myhvbr0/],
      [['--subnet', '10.99.0.0/24', 'net', 'ensure'], {}, /error: --subnet: .*10\.62\.0\.0\/24/],
      [['--subnet', '10.99.0.0/24', 'vm', 'stop', 'a'], {}, /--subnet: /],
      [['--subnet', '10.99.0.0/24', 'vm', 'rm', '-f', 'a'], {}, /--subnet: /],
      [['--subnet', '10.99.0.0/24', 'gc'], {}, /--subnet: /],
      [['--nat', 'iptables', 'forward', 'add', 'a', '9090:90'], {}, /--nat: .*nft/],
    ];
    for (const [args, env, stderr] of refusals) {
      const result = await run(args, env);
      expect(result.code, `${args.join(' ')}\n${result.stderr}`).toBe(2);
      expect(result.stderr).toMatch(stderr);
    }
    expect(box.snapshot()).toBe(before);
    expect(bridgeAddresses(box, 'myhvbr0')).toEqual(['10.62.0.1/24']);
  });

  it('named networks: create, join with --network, inspect, refuse overlaps and removal while in use', async () => {
    const made = await run(['--json', 'net', 'create', 'lab', '--subnet', '10.63.0.0/24']);
    expect(made.code, made.stderr).toBe(0);
    expect(json<{ network: NetworkJson }>(made).network).toMatchObject({
      name: 'lab',
      bridge: 'myhv-lab',
      subnet: '10.63.0.0/24',
      gateway: '10.63.0.1',
    });
    expect(bridgeAddresses(box, 'myhv-lab')).toEqual(['10.63.0.1/24']);

    // A listing writes the listing cache once every record is settled (2 s old), and any later listing may refresh
    // it: have it written now, so that what the refused commands below list changes nothing.
    const cache = join(box.stateDir, 'vms', '.listing-cache.json');
    for (let i = 0; i < 50 && !existsSync(cache); i++) {
      await run(['vm', 'ls']);
      if (!existsSync(cache)) await new Promise((r) => setTimeout(r, 100));
    }
    expect(existsSync(cache)).toBe(true);
    const before = box.snapshot();
    for (const [args, stderr] of [
      [['net', 'create', 'lab', '--subnet', '10.64.0.0/24'], /name: a network named lab already exists/],
      [
        ['net', 'create', 'wide', '--subnet', '10.62.0.0/16'],
        /error: --subnet: 10\.62\.0\.0\/16 overlaps 10\.62\.0\.0\/24 of network default/,
      ],
      [
        ['net', 'create', 'twin', '--subnet', '10.65.0.0/24', '--bridge', 'myhvbr0'],
        /--bridge: myhvbr0 is the bridge of network default/,
      ],
      [['net', 'create', 'Bad_Name', '--subnet', '10.66.0.0/24'], /name: "Bad_Name" is not a network name/],
      [['net', 'create', 'nosubnet'], /--subnet: missing/],
      [
        ['vm', 'create', 'd', '--kernel', box.kernel, '--network', 'nope'],
        /network\.name: there is no network named nope/,
      ],
      [['net', 'rm', 'default'], /network default is used by a/],
    ] as [string[], RegExp][]) {
      const result = await run(args);
      expect(result.code, `${args.join(' ')}\n${result.stderr}`).toBe(2);
      expect(result.stderr).toMatch(stderr);
    }
    expect(box.snapshot()).toBe(before);

    const joined = await run([
      '--json',
      'vm',
      'create',
      'c',
      '--kernel',
      box.kernel,
      '--network',
      'lab',
      '-p',
      '8081:80',
    ]);
    expect(joined.code, joined.stderr).toBe(0);
    const vm = json<{ vm: { ip: string; bridge: string; spec: { network: { name: string } } } }>(joined).vm;
    expect(vm).toMatchObject({ ip: '10.63.0.2', bridge: 'myhv-lab', spec: { network: { name: 'lab' } } });
    // Each network allocates from its own subnet and reservation directory.
    expect(readdirSync(join(box.stateDir, 'ipam', '10.63.0.0_24')).filter((f) => /^[\d.]+$/.test(f))).toEqual(
      ['10.63.0.2'],
    );

    const listed = json<{ networks: NetworkJson[] }>(await run(['--json', 'net', 'ls'])).networks;
    expect(listed.map((n) => `${n.name} ${n.vms}`)).toEqual(['default 1', 'lab 1']);
    const inspected = json<{
      bridge: { ports: { vm: string }[] };
      forwards: { hostPort: number; vm: string }[];
      vms: string[];
    }>(await run(['--json', 'net', 'inspect', 'lab']));
    expect(inspected.vms).toEqual(['c']);
    expect(inspected.bridge.ports.map((p) => p.vm)).toEqual(['c']);
    expect(inspected.forwards.map((f) => `${f.hostPort} ${f.vm}`)).toEqual(['8081 c']);

    const inUse = await run(['net', 'rm', 'lab']);
    expect(inUse.code).toBe(2);
    expect(inUse.stderr).toMatch(/network lab is used by c/);
    expect((await run(['vm', 'rm', '-f', 'c'])).code).toBe(0);
    const removed = await run(['net', 'rm', 'lab']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(
      json<{ networks: NetworkJson[] }>(await run(['--json', 'net', 'ls'])).networks.map((n) => n.name),
    ).toEqual(['default']);
  });

  it.skipIf(inProcessOnly('a VM made with --subnet'))(
    'a VM made with --subnet is removed without it, and its reservation goes with it',
    async () => {
      const other = new Sandbox('nets2');
      other.create();
      try {
        const created = await myhv(
          ['--subnet', '10.99.0.0/24', 'vm', 'create', 'x', '--kernel', other.kernel],
          other.env,
        );
        expect(created.code, created.stderr).toBe(0);
        // No --subnet now: the record says 10.99.0.0/24, so the reservation is found and released.
        const removed = await myhv(['vm', 'rm', '-f', 'x'], other.env);
        expect(removed.code, removed.stderr).toBe(0);
        expect(
          readdirSync(join(other.stateDir, 'ipam', '10.99.0.0_24')).filter((f) => /^[\d.]+$/.test(f)),
        ).toEqual([]);
        const ls = json<{ networks: NetworkJson[] }>(await myhv(['--json', 'net', 'ls'], other.env));
        expect(ls.networks[0]).toMatchObject({ subnet: '10.99.0.0/24', vms: 0 });
      } finally {
        other.destroy();
      }
    },
  );
});
