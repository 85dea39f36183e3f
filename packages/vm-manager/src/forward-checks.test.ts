import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { vmRecord } from '../test/fixtures/vm-record.js';
import { VmManagerError } from './errors.js';
import { ForwardChecks } from './forward-checks.js';
import type { HostProbe } from './host-probe.js';
import { LISTING_CACHE_FILE } from './listing-cache.js';
import { type ForwardSpec, parseForwardSpec, parseVmSpec } from './spec.js';
import { StateStore, type VmRecord } from './state-store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A probe with fixed answers that counts the questions. */
function fakeProbe(
  answers: { addresses?: readonly string[]; tcp?: readonly number[]; udp?: readonly number[] } = {},
) {
  const asked: string[] = [];
  const probe: HostProbe = {
    async localAddresses() {
      asked.push('addresses');
      return [...(answers.addresses ?? ['127.0.0.1', '192.0.2.10'])];
    },
    async listening(protocol) {
      asked.push(protocol);
      return new Set(answers[protocol] ?? []);
    },
  };
  return { probe, asked };
}

/** A state directory holding `records` (as vm create and stop leave them). */
async function stateWith(records: VmRecord[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'myhv-forward-checks-'));
  dirs.push(dir);
  const store = new StateStore(dir, { settleMs: 0 });
  await store.init();
  for (const record of records) {
    await store.claim(record.name);
    await store.write(record);
  }
  return dir;
}

/** vmRecord(name, i) forwards tcp/(20000 + i); `status` as given. */
function recordOf(name: string, i: number, status: VmRecord['status'] = 'stopped'): VmRecord {
  return { ...vmRecord(name, i), status };
}

const fwd = (input: Record<string, unknown>): ForwardSpec => parseForwardSpec(input);

async function refusal(promise: Promise<unknown>): Promise<VmManagerError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(VmManagerError.isInstance(error), String(error)).toBe(true);
  return error as VmManagerError;
}

describe('ForwardChecks.assertCreatable', () => {
  it('refuses a host IP that is not an address of the host, naming the field', async () => {
    const { probe } = fakeProbe();
    const checks = new ForwardChecks({ stateDir: await stateWith([]), hostProbe: probe });
    const error = await refusal(
      checks.assertCreatable('web', [
        fwd({ hostPort: 8080, guestPort: 80 }),
        fwd({ hostIp: '8.8.8.8', hostPort: 8081, guestPort: 80 }),
      ]),
    );
    expect(error).toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: { field: 'network.forwards[1].hostIp' },
    });
  });

  it('accepts the host’s own addresses, 0.0.0.0 and 127.0.0.1 (asking for addresses only when needed)', async () => {
    const { probe, asked } = fakeProbe({ addresses: ['192.0.2.10'] });
    const checks = new ForwardChecks({ stateDir: await stateWith([]), hostProbe: probe });
    await checks.assertCreatable('web', [
      fwd({ hostIp: '0.0.0.0', hostPort: 1, guestPort: 1 }),
      fwd({ hostIp: '127.0.0.1', hostPort: 2, guestPort: 1 }),
    ]);
    expect(asked).toEqual(['tcp']);
    await checks.assertCreatable('web', [fwd({ hostIp: '192.0.2.10', hostPort: 3, guestPort: 1 })]);
    expect(asked).toEqual(['tcp', 'addresses', 'tcp']);
  });

  it.each([
    ['running', 'running'],
    ['stopped', 'stopped'],
    ['paused', 'paused'],
    ['still being created', 'creating'],
  ] as const)('refuses a host port forwarded to another VM that is %s', async (_label, status) => {
    const { probe } = fakeProbe();
    const stateDir = await stateWith([recordOf('db', 0), recordOf('other', 5, status)]);
    const checks = new ForwardChecks({ stateDir, hostProbe: probe });
    const error = await refusal(
      checks.assertCreatable('web', [
        fwd({ hostPort: 8080, guestPort: 80 }),
        fwd({ hostPort: 20_005, guestPort: 80 }),
      ]),
    );
    expect(error).toMatchObject({
      code: 'CONFLICT',
      details: { field: 'network.forwards[1].hostPort', owner: 'other', vm: 'web' },
    });
    expect(error.message).toBe('network.forwards[1].hostPort: tcp/20005 is already forwarded to VM other');
  });

  it('counts a forward in a spec that is not installed yet, and not one of a VM being deleted', async () => {
    const creating = recordOf('new', 1, 'creating');
    creating.resources.forwards = [];
    const deleting = recordOf('gone', 2, 'deleting');
    deleting.resources.forwards = [];
    const { probe } = fakeProbe();
    const checks = new ForwardChecks({ stateDir: await stateWith([creating, deleting]), hostProbe: probe });
    const error = await refusal(checks.assertCreatable('web', [fwd({ hostPort: 20_001, guestPort: 80 })]));
    expect(error.details).toMatchObject({ owner: 'new' });
    await checks.assertCreatable('web', [fwd({ hostPort: 20_002, guestPort: 80 })]);
  });

  it('tells protocols apart', async () => {
    const { probe } = fakeProbe({ udp: [8080] });
    const checks = new ForwardChecks({ stateDir: await stateWith([recordOf('db', 0)]), hostProbe: probe });
    await checks.assertCreatable('web', [
      fwd({ protocol: 'udp', hostPort: 20_000, guestPort: 53 }),
      fwd({ protocol: 'tcp', hostPort: 8080, guestPort: 80 }),
    ]);
  });

  it.each([
    ['tcp', { tcp: [8080] }],
    ['udp', { udp: [8080] }],
  ] as const)('refuses a %s port a socket on the host holds', async (protocol, answers) => {
    const { probe } = fakeProbe(answers);
    const checks = new ForwardChecks({ stateDir: await stateWith([]), hostProbe: probe });
    const error = await refusal(
      checks.assertCreatable('web', [fwd({ protocol, hostPort: 8080, guestPort: 80 })]),
    );
    expect(error).toMatchObject({ code: 'CONFLICT', details: { field: 'network.forwards[0].hostPort' } });
  });

  it('names the network namespace it looked in', async () => {
    const { probe } = fakeProbe({ addresses: [], tcp: [8080] });
    const checks = new ForwardChecks({
      stateDir: await stateWith([]),
      hostProbe: probe,
      vmm: { netns: 'lab' },
    });
    const ip = await refusal(
      checks.assertCreatable('web', [fwd({ hostIp: '10.0.0.1', hostPort: 1, guestPort: 1 })]),
    );
    expect(ip.message).toMatch(/not an address of network namespace lab/);
    const port = await refusal(checks.assertCreatable('web', [fwd({ hostPort: 8080, guestPort: 80 })]));
    expect(port.message).toMatch(/network namespace lab/);
  });

  it('asks nothing and reads nothing for a VM without forwards', async () => {
    const { probe, asked } = fakeProbe();
    const checks = new ForwardChecks({ stateDir: '/nonexistent/state', hostProbe: probe });
    await checks.assertCreatable('web', parseVmSpec({ name: 'web', kernel: '/k' }).network.forwards);
    expect(asked).toEqual([]);
  });

  it('writes nothing to the state directory, not even the listing cache', async () => {
    const stateDir = await stateWith([recordOf('db', 0)]);
    const store = new StateStore(stateDir, { settleMs: 0 });
    store.list();
    const cache = join(stateDir, 'vms', LISTING_CACHE_FILE);
    // The record changes after the cache was written: a caching list() would rewrite the cache now.
    await store.write(recordOf('db', 0, 'running'));
    const before = readFileSync(cache, 'utf8');
    const { probe } = fakeProbe();
    await new ForwardChecks({ stateDir, hostProbe: probe }).assertCreatable('web', [
      fwd({ hostPort: 8080, guestPort: 80 }),
    ]);
    expect(readFileSync(cache, 'utf8')).toBe(before);
  });
});

describe('ForwardChecks.assertAddable', () => {
  it('refuses what create refuses, naming the forward’s own fields', async () => {
    const { probe } = fakeProbe({ tcp: [9090] });
    const stateDir = await stateWith([recordOf('web', 0), recordOf('db', 1)]);
    const checks = new ForwardChecks({ stateDir, hostProbe: probe });
    expect(
      await refusal(checks.assertAddable('web', fwd({ hostIp: '8.8.8.8', hostPort: 1, guestPort: 1 }))),
    ).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'hostIp' } });
    expect(await refusal(checks.assertAddable('web', fwd({ hostPort: 20_001, guestPort: 1 })))).toMatchObject(
      { code: 'CONFLICT', details: { field: 'hostPort', owner: 'db' } },
    );
    expect(await refusal(checks.assertAddable('web', fwd({ hostPort: 9090, guestPort: 1 })))).toMatchObject({
      code: 'CONFLICT',
      details: { field: 'hostPort' },
    });
  });

  it('lets the same forward again through (addForward makes it a no-op), and refuses another on that port', async () => {
    const { probe, asked } = fakeProbe({ tcp: [20_000] });
    const checks = new ForwardChecks({ stateDir: await stateWith([recordOf('web', 0)]), hostProbe: probe });
    await checks.assertAddable('web', fwd({ hostPort: 20_000, guestPort: 80 }));
    expect(asked).toEqual([]);
    for (const other of [{ guestPort: 81 }, { guestPort: 80, hostIp: '127.0.0.1' }]) {
      expect(await refusal(checks.assertAddable('web', fwd({ hostPort: 20_000, ...other })))).toMatchObject({
        code: 'CONFLICT',
        details: { field: 'hostPort', vm: 'web' },
      });
    }
  });

  it('refuses a VM without a network, and leaves a missing VM to addForward', async () => {
    const noNet = recordOf('nonet', 0);
    noNet.spec = parseVmSpec({ name: 'nonet', kernel: '/k', network: { enabled: false } });
    noNet.resources = { forwards: [], shares: [] };
    const { probe } = fakeProbe();
    const checks = new ForwardChecks({ stateDir: await stateWith([noNet]), hostProbe: probe });
    expect(
      await refusal(checks.assertAddable('nonet', fwd({ hostPort: 8080, guestPort: 80 }))),
    ).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'network.enabled' } });
    await checks.assertAddable('missing', fwd({ hostPort: 8080, guestPort: 80 }));
  });
});
