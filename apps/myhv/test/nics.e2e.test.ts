import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eSkipReason, json, myhv, Sandbox } from './myhv.js';

const skip = e2eSkipReason();
if (skip) console.warn(`skipped: the vm nic e2e tests, because ${skip}`);

interface Nic {
  id: string;
  tap: string;
  mac?: string;
  ip?: string;
}

describe.skipIf(skip !== undefined)('myhv vm nic (local network in a namespace, simulator VMM)', () => {
  const box = new Sandbox('nics');
  const run = (...args: string[]) => myhv(args, box.env);
  /** The sandbox's TAPs: name → the bridge it is on. */
  const taps = () =>
    new Map(
      (
        JSON.parse(
          execFileSync('ip', ['-n', box.name, '-j', '-d', 'link', 'show'], { encoding: 'utf8' }) || '[]',
        ) as { ifname: string; master?: string; linkinfo?: { info_kind?: string } }[]
      )
        .filter((l) => l.linkinfo?.info_kind === 'tun')
        .map((l) => [l.ifname, l.master ?? null]),
    );

  beforeAll(async () => {
    box.create();
    const created = await run('vm', 'create', 'n', '--kernel', box.kernel, '--memory', '64M');
    expect(created.code, created.stderr).toBe(0);
  });
  afterAll(() => {
    box.destroy();
  });

  it('adds a NIC with a real TAP on the bridge, lists it, and removes it with its TAP', async () => {
    const { vm } = json<{ vm: { ip: string; tap: string } }>(await run('--json', 'vm', 'inspect', 'n'));
    const added = await run('--json', 'vm', 'nic', 'add', 'n');
    expect(added.code, added.stderr).toBe(0);
    const nic = json<{ nic: Nic }>(added).nic;
    expect(nic).toMatchObject({ id: 'nic1', mac: expect.stringMatching(/^[0-9a-f:]{17}$/) });
    expect(nic.ip).not.toBe(vm.ip);
    const bridge = taps().get(vm.tap);
    expect(bridge).toBeTruthy();
    expect(taps().get(nic.tap)).toBe(bridge);

    const inspected = await run('vm', 'inspect', 'n');
    expect(inspected.stdout).toContain(`nic1: tap ${nic.tap}, mac ${nic.mac}, ip ${nic.ip}`);
    const human = await run('vm', 'nic', 'ls', 'n');
    expect(human.stdout).toMatch(
      new RegExp(`^nic1\\s+${nic.tap}\\s+${nic.mac}\\s+${nic.ip!.replaceAll('.', '\\.')}$`, 'm'),
    );

    // Bad input: exit 2 naming the field, and nothing changes.
    const before = taps();
    const multicast = await run('--json', 'vm', 'nic', 'add', 'n', '--mac', '01:00:5e:00:00:01');
    expect(multicast.code).toBe(2);
    expect(JSON.parse(multicast.stderr).error).toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'nics[1].mac',
    });
    expect(taps()).toEqual(before);

    // gc knows the NIC's TAP and address as the VM's.
    const gc = await run('--json', 'gc');
    expect(gc.code, gc.stderr).toBe(0);
    expect(JSON.stringify(json(gc))).not.toContain(nic.tap);
    expect(taps().has(nic.tap)).toBe(true);

    const removed = await run('--json', 'vm', 'nic', 'rm', 'n', 'nic1');
    expect(removed.code, removed.stderr).toBe(0);
    expect(json<{ devices: { nics: Nic[] } }>(removed).devices.nics).toEqual([]);
    expect(taps().has(nic.tap)).toBe(false);
    expect((await run('vm', 'nic', 'rm', 'n', 'nic1')).code).toBe(1);
  }, 120_000);

  it('a stopped VM gets the NIC at its next start; deleting the VM removes every TAP it had', async () => {
    expect((await run('vm', 'stop', 'n')).code).toBe(0);
    const added = await run('--json', 'vm', 'nic', 'add', 'n', '--mac', '52:54:00:AA:BB:CC');
    expect(added.code, added.stderr).toBe(0);
    const nic = json<{ nic: Nic }>(added).nic;
    expect(nic.mac).toBe('52:54:00:aa:bb:cc');
    expect((await run('vm', 'start', 'n')).code).toBe(0);
    expect(taps().has(nic.tap)).toBe(true);
    expect((await run('vm', 'rm', '-f', 'n')).code).toBe(0);
    expect([...taps().keys()]).toEqual([]);
  }, 120_000);
});
