import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import type { BridgeOps } from '../bridge-ops.js';
import type { NetOpsErrorCode } from '../errors.js';
import type { NatOps } from '../nat-ops.js';
import type { PortForwardRule } from '../port-forward.js';
import type { CreateTapResult, TapOps, TapSpec } from '../tap-ops.js';
import { expectNetOpsError } from './expect-net-ops-error.js';

/** The backend under test: one object may serve as all three. */
export interface NetOpsUnderTest {
  bridge: BridgeOps;
  tap: TapOps;
  nat: NatOps;
}

/** How the conformance kit gets a fresh ops under test per test, cleans up, skips, and times out. */
export interface NetOpsConformanceOptions {
  /** Called before EACH test: a fresh, empty environment (e.g. a fresh netns). */
  factory: () => NetOpsUnderTest | Promise<NetOpsUnderTest>;
  /** Called after each test with what factory returned. */
  cleanup?: (ops: NetOpsUnderTest) => void | Promise<void>;
  /** A reason string skips the whole suite, printing the reason; false/undefined runs it. */
  skip?: string | false;
  /** Per-test timeout in ms (kernel backends are slower). */
  timeout?: number;
}

/** Names and addresses the kit uses; all inside 10.231.0.0/16 and a throwaway environment. */
export const conformanceFixtures = Object.freeze({
  bridge: 'kitbr0',
  bridgeAddress: '10.231.0.1/24',
  otherBridge: 'kitbr1',
  otherBridgeAddress: '10.231.1.1/24',
  ipv6Address: 'fd00:231::1/64',
  /** Exactly 15 bytes. */
  longBridge: 'kitbr0123456789',
  longTap: 'kittap012345678',
});

/** Interface names every backend must reject with INVALID_ARGUMENT before anything reaches a host. */
export const hostileInterfaceNames: readonly string[] = Object.freeze([
  '',
  ' ',
  'kit br',
  'kit\nbr',
  'kit\tbr',
  'kit;reboot',
  'kit/br',
  '.',
  '..',
  'kitbr\u00e4',
  'kit\u0000br',
  '$(reboot)',
  'kit`id`',
  'kit:0',
  '-kitbr',
  'all',
  'kittap0123456789',
]);

const { bridge: BR, bridgeAddress: BR_ADDRESS } = conformanceFixtures;
const aborted = () => AbortSignal.abort();

function forward(i: number, overrides: Partial<PortForwardRule> = {}): PortForwardRule {
  return {
    protocol: 'tcp',
    hostPort: 40000 + i,
    guestIp: `10.231.0.${10 + i}`,
    guestPort: 8000 + i,
    ...overrides,
  };
}

/** The fields every backend must list back; owner and hostIp are optional to keep. */
function forwardKeys(rules: readonly PortForwardRule[]): string[] {
  return rules.map((r) => `${r.protocol}/${r.hostPort}->${r.guestIp}:${r.guestPort}`).sort();
}

function isAtomic(ops: NetOpsUnderTest): boolean {
  return ops.tap.capabilities.atomicTap;
}

async function ensureKitBridge(ops: NetOpsUnderTest, name: string = BR, address: string = BR_ADDRESS) {
  return ops.bridge.ensureBridge({ name, address });
}

/** Creates a TAP the way this backend can: attached to the kit bridge where `atomicTap` requires a bridge. */
async function makeTap(
  ops: NetOpsUnderTest,
  name: string,
  extra: Omit<TapSpec, 'name'> = {},
  signal?: AbortSignal,
): Promise<CreateTapResult> {
  const options = signal ? { signal } : undefined;
  if (isAtomic(ops) && extra.bridge === undefined) {
    await ensureKitBridge(ops);
    return ops.tap.createTap({ name, bridge: BR, ...extra }, options);
  }
  if (extra.bridge !== undefined) await ensureKitBridge(ops, extra.bridge);
  return ops.tap.createTap({ name, ...extra }, options);
}

/** Proves that no interface named `name` exists: a TAP of that name can be created fresh (and is deleted again). */
async function expectNameFree(ops: NetOpsUnderTest, name: string): Promise<void> {
  // An atomicTap backend needs a bridge for the probe TAP; it must not be the very name being probed.
  if (isAtomic(ops) && name === BR) {
    await ensureKitBridge(ops, conformanceFixtures.otherBridge, conformanceFixtures.otherBridgeAddress);
  }
  const result = await makeTap(
    ops,
    name,
    isAtomic(ops) && name === BR ? { bridge: conformanceFixtures.otherBridge } : {},
  );
  expect(result.created, `${name} must not exist`).toBe(true);
  expect((await ops.tap.deleteTap(name)).existed).toBe(true);
}

async function portNames(ops: NetOpsUnderTest, bridge: string = BR): Promise<string[]> {
  return (await ops.bridge.listBridgePorts(bridge)).map((p) => p.name).sort();
}

/**
 * Registers a vitest suite `name` that checks a BridgeOps/TapOps/NatOps backend against the v1 contracts: results,
 * error codes (never messages), capability gating, aborted signals, name limits, hostile input and concurrency.
 * Each test gets a fresh environment from `factory` and hands it to `cleanup` afterwards.
 */
export function runNetOpsConformance(name: string, options: NetOpsConformanceOptions): void {
  if (typeof name !== 'string' || name === '') throw new TypeError('name must be a non-empty string');
  if (typeof options?.factory !== 'function') throw new TypeError('options.factory must be a function');
  const { factory, cleanup, skip, timeout } = options;
  const environments = new WeakMap<object, NetOpsUnderTest>();
  const testOptions = timeout === undefined ? {} : { timeout };

  type Body = (ops: NetOpsUnderTest, ctx: TestContext) => Promise<void>;
  const test = (title: string, body: Body) =>
    it(title, testOptions, async (ctx) => {
      const ops = environments.get(ctx.task);
      if (!ops) throw new Error('the factory did not provide an environment');
      await body(ops, ctx);
    });
  const skipUnless = (ctx: TestContext, condition: boolean, reason: string) => {
    if (!condition) ctx.skip(reason);
  };

  const body = () => {
    beforeEach(async (ctx) => {
      environments.set(ctx.task, await factory());
    }, timeout);
    afterEach(async (ctx) => {
      const ops = environments.get(ctx.task);
      environments.delete(ctx.task);
      if (ops && cleanup) await cleanup(ops);
    }, timeout);

    test('declares specificationVersion v1 and boolean capabilities', async (ops) => {
      const names = ['listBridgePorts', 'listPortForwards', 'atomicTap', 'multiQueue', 'tapOwner', 'ipv6'];
      for (const part of [ops.bridge, ops.tap, ops.nat]) {
        expect(part.specificationVersion).toBe('v1');
        for (const capability of names) {
          expect(
            typeof (part.capabilities as unknown as Record<string, unknown>)[capability],
            capability,
          ).toBe('boolean');
        }
      }
    });

    describe('ensureBridge', () => {
      test('creates a missing bridge, then changes nothing when repeated', async (ops) => {
        expect(await ensureKitBridge(ops)).toEqual({ name: BR, created: true });
        expect(await ensureKitBridge(ops)).toEqual({ name: BR, created: false });
        if (ops.bridge.capabilities.listBridgePorts) expect(await portNames(ops)).toEqual([]);
      });

      test('keeps the bridge and its ports when ensured again', async (ops, ctx) => {
        skipUnless(ctx, ops.bridge.capabilities.listBridgePorts, 'needs capabilities.listBridgePorts');
        await makeTap(ops, 'kittap0', { bridge: BR });
        expect((await ensureKitBridge(ops)).created).toBe(false);
        expect(await portNames(ops)).toEqual(['kittap0']);
      });

      test('is CONFLICT when the name exists and is not a bridge', async (ops) => {
        await makeTap(ops, 'kittap0');
        await expectNetOpsError(
          ops.bridge.ensureBridge({ name: 'kittap0', address: BR_ADDRESS }),
          'CONFLICT',
        );
        expect((await ops.tap.deleteTap('kittap0')).existed).toBe(true);
      });

      test('rejects a bad address or MTU with INVALID_ARGUMENT and creates nothing', async (ops) => {
        const name = conformanceFixtures.otherBridge;
        for (const address of [
          '10.231.1.1',
          '10.231.1.1/33',
          '10.231.1.256/24',
          'kitbr1',
          '',
          '10.231.1.1/24\n',
        ]) {
          await expectNetOpsError(ops.bridge.ensureBridge({ name, address }), 'INVALID_ARGUMENT');
        }
        for (const mtu of [0, 67, 65536, 1.5, Number.NaN]) {
          await expectNetOpsError(
            ops.bridge.ensureBridge({ name, address: conformanceFixtures.otherBridgeAddress, mtu }),
            'INVALID_ARGUMENT',
          );
        }
        await expectNameFree(ops, name);
      });

      test('sets an IPv6 gateway address (UNSUPPORTED without capabilities.ipv6)', async (ops) => {
        const spec = { name: BR, address: BR_ADDRESS, ipv6Address: conformanceFixtures.ipv6Address };
        if (!ops.bridge.capabilities.ipv6) {
          await expectNetOpsError(ops.bridge.ensureBridge(spec), 'UNSUPPORTED');
          await expectNameFree(ops, BR);
          return;
        }
        expect((await ops.bridge.ensureBridge(spec)).created).toBe(true);
        expect((await ops.bridge.ensureBridge(spec)).created).toBe(false);
        for (const ipv6Address of ['fd00:231::1', 'fd00:231::1/129', 'nope/64', '10.231.0.1/24']) {
          await expectNetOpsError(ops.bridge.ensureBridge({ ...spec, ipv6Address }), 'INVALID_ARGUMENT');
        }
      });
    });

    describe('listBridgePorts', () => {
      test('is NOT_FOUND for a missing bridge (UNSUPPORTED without the capability)', async (ops) => {
        const code: NetOpsErrorCode = ops.bridge.capabilities.listBridgePorts ? 'NOT_FOUND' : 'UNSUPPORTED';
        await expectNetOpsError(ops.bridge.listBridgePorts(conformanceFixtures.otherBridge), code);
      });

      test('follows TAPs joining and leaving (UNSUPPORTED without the capability)', async (ops) => {
        await ensureKitBridge(ops);
        if (!ops.bridge.capabilities.listBridgePorts) {
          await expectNetOpsError(ops.bridge.listBridgePorts(BR), 'UNSUPPORTED');
          return;
        }
        for (const tap of ['kittap0', 'kittap1', 'kittap2']) await makeTap(ops, tap, { bridge: BR });
        expect(await portNames(ops)).toEqual(['kittap0', 'kittap1', 'kittap2']);
        await ops.tap.deleteTap('kittap1');
        expect(await portNames(ops)).toEqual(['kittap0', 'kittap2']);
      });
    });

    describe('createTap', () => {
      test('creates a TAP, then adopts it with the same queue mode', async (ops) => {
        expect(await makeTap(ops, 'kittap0')).toEqual({ name: 'kittap0', created: true });
        expect(await makeTap(ops, 'kittap0')).toEqual({ name: 'kittap0', created: false });
      });

      test('creates and adopts a multi-queue TAP (UNSUPPORTED without capabilities.multiQueue)', async (ops) => {
        if (!ops.tap.capabilities.multiQueue) {
          await expectNetOpsError(makeTap(ops, 'kittap0', { multiQueue: true }), 'UNSUPPORTED');
          await expectNameFree(ops, 'kittap0');
          return;
        }
        expect((await makeTap(ops, 'kittap0', { multiQueue: true })).created).toBe(true);
        expect((await makeTap(ops, 'kittap0', { multiQueue: true })).created).toBe(false);
      });

      test('is CONFLICT for an existing TAP of the other queue mode', async (ops, ctx) => {
        skipUnless(ctx, ops.tap.capabilities.multiQueue, 'needs capabilities.multiQueue');
        await makeTap(ops, 'kittap0');
        await expectNetOpsError(makeTap(ops, 'kittap0', { multiQueue: true }), 'CONFLICT');
        await makeTap(ops, 'kittap1', { multiQueue: true });
        await expectNetOpsError(makeTap(ops, 'kittap1', { multiQueue: false }), 'CONFLICT');
      });

      test('is CONFLICT when the name is a bridge', async (ops) => {
        await ensureKitBridge(ops, conformanceFixtures.otherBridge, conformanceFixtures.otherBridgeAddress);
        await expectNetOpsError(makeTap(ops, conformanceFixtures.otherBridge), 'CONFLICT');
      });

      test('with a bridge, ends attached to it', async (ops) => {
        expect((await makeTap(ops, 'kittap0', { bridge: BR })).created).toBe(true);
        if (ops.bridge.capabilities.listBridgePorts) expect(await portNames(ops)).toEqual(['kittap0']);
        // Adopting with a bridge keeps it attached.
        expect((await makeTap(ops, 'kittap0', { bridge: BR })).created).toBe(false);
        if (ops.bridge.capabilities.listBridgePorts) expect(await portNames(ops)).toEqual(['kittap0']);
      });

      test('with a missing bridge is NOT_FOUND and leaves no TAP behind', async (ops) => {
        await expectNetOpsError(
          ops.tap.createTap({ name: 'kittap0', bridge: conformanceFixtures.otherBridge }),
          'NOT_FOUND',
        );
        await expectNameFree(ops, 'kittap0');
      });

      test('without a bridge is INVALID_ARGUMENT where capabilities.atomicTap', async (ops, ctx) => {
        skipUnless(ctx, isAtomic(ops), 'only backends with capabilities.atomicTap require a bridge');
        await expectNetOpsError(ops.tap.createTap({ name: 'kittap0' }), 'INVALID_ARGUMENT');
        await expectNameFree(ops, 'kittap0');
      });

      test('sets an owner (UNSUPPORTED without capabilities.tapOwner)', async (ops) => {
        const owner = { uid: 0, gid: 0 };
        if (!ops.tap.capabilities.tapOwner) {
          await expectNetOpsError(makeTap(ops, 'kittap0', { owner }), 'UNSUPPORTED');
          await expectNameFree(ops, 'kittap0');
          return;
        }
        expect((await makeTap(ops, 'kittap0', { owner })).created).toBe(true);
      });

      test('rejects a bad MTU with INVALID_ARGUMENT and creates nothing', async (ops) => {
        for (const mtu of [0, 67, 65536, 1.5, -1]) {
          await expectNetOpsError(makeTap(ops, 'kittap0', { mtu }), 'INVALID_ARGUMENT');
        }
        await expectNameFree(ops, 'kittap0');
      });
    });

    describe('addToBridge and bringUp', () => {
      const reason = 'capabilities.atomicTap: createTap attaches (covered by "createTap with a bridge")';

      test('attach a TAP to a bridge and bring it up', async (ops, ctx) => {
        skipUnless(ctx, !isAtomic(ops), reason);
        await ensureKitBridge(ops);
        await ops.tap.createTap({ name: 'kittap0' });
        await ops.tap.addToBridge('kittap0', BR);
        await ops.tap.bringUp('kittap0');
        // Both are idempotent.
        await ops.tap.addToBridge('kittap0', BR);
        await ops.tap.bringUp('kittap0');
        if (ops.bridge.capabilities.listBridgePorts) expect(await portNames(ops)).toEqual(['kittap0']);
      });

      test('addToBridge is NOT_FOUND for a missing TAP', async (ops, ctx) => {
        skipUnless(ctx, !isAtomic(ops), reason);
        await ensureKitBridge(ops);
        await expectNetOpsError(ops.tap.addToBridge('kittap0', BR), 'NOT_FOUND');
      });

      test('addToBridge is NOT_FOUND for a missing bridge', async (ops, ctx) => {
        skipUnless(ctx, !isAtomic(ops), reason);
        await ops.tap.createTap({ name: 'kittap0' });
        await expectNetOpsError(ops.tap.addToBridge('kittap0', BR), 'NOT_FOUND');
      });

      test('bringUp is NOT_FOUND for a missing TAP', async (ops, ctx) => {
        skipUnless(ctx, !isAtomic(ops), reason);
        await expectNetOpsError(ops.tap.bringUp('kittap0'), 'NOT_FOUND');
      });
    });

    describe('deleteTap', () => {
      test('reports existed: false for a missing TAP', async (ops) => {
        expect(await ops.tap.deleteTap('kittap0')).toEqual({ name: 'kittap0', existed: false });
      });

      test('deletes a TAP, then reports existed: false', async (ops) => {
        await makeTap(ops, 'kittap0');
        expect(await ops.tap.deleteTap('kittap0')).toEqual({ name: 'kittap0', existed: true });
        expect(await ops.tap.deleteTap('kittap0')).toEqual({ name: 'kittap0', existed: false });
        await expectNameFree(ops, 'kittap0');
      });

      test('takes the TAP off its bridge (UNSUPPORTED listing without the capability)', async (ops) => {
        await makeTap(ops, 'kittap0', { bridge: BR });
        await ops.tap.deleteTap('kittap0');
        if (!ops.bridge.capabilities.listBridgePorts) {
          await expectNetOpsError(ops.bridge.listBridgePorts(BR), 'UNSUPPORTED');
          return;
        }
        expect(await portNames(ops)).toEqual([]);
      });
    });

    describe('interface names', () => {
      const { longBridge, longTap } = conformanceFixtures;

      test('a 15-byte bridge name works', async (ops) => {
        expect(Buffer.byteLength(longBridge)).toBe(15);
        expect((await ops.bridge.ensureBridge({ name: longBridge, address: BR_ADDRESS })).created).toBe(true);
        expect((await makeTap(ops, 'kittap0', { bridge: longBridge })).created).toBe(true);
        if (ops.bridge.capabilities.listBridgePorts) {
          expect(await portNames(ops, longBridge)).toEqual(['kittap0']);
        }
      });

      test('a 15-byte TAP name works', async (ops) => {
        expect(Buffer.byteLength(longTap)).toBe(15);
        expect((await makeTap(ops, longTap)).created).toBe(true);
        expect(await ops.tap.deleteTap(longTap)).toEqual({ name: longTap, existed: true });
      });

      test('a 16-byte bridge name is INVALID_ARGUMENT and creates nothing', async (ops) => {
        const name = `${longBridge}x`;
        await expectNetOpsError(ops.bridge.ensureBridge({ name, address: BR_ADDRESS }), 'INVALID_ARGUMENT');
        await expectNameFree(ops, longBridge);
      });

      test('a 16-byte TAP name is INVALID_ARGUMENT and creates nothing', async (ops) => {
        const name = `${longTap}x`;
        await expectNetOpsError(makeTap(ops, name), 'INVALID_ARGUMENT');
        await expectNetOpsError(ops.tap.deleteTap(name), 'INVALID_ARGUMENT');
        await expectNameFree(ops, longTap);
      });

      test('hostile names are INVALID_ARGUMENT in every operation', async (ops) => {
        await ensureKitBridge(ops);
        const lists = ops.bridge.capabilities.listBridgePorts;
        for (const bad of hostileInterfaceNames) {
          const calls: [string, () => Promise<unknown>][] = [
            ['ensureBridge', () => ops.bridge.ensureBridge({ name: bad, address: BR_ADDRESS })],
            ['createTap name', () => ops.tap.createTap({ name: bad, bridge: BR })],
            ['createTap bridge', () => ops.tap.createTap({ name: 'kittap0', bridge: bad })],
            ['addToBridge tap', () => ops.tap.addToBridge(bad, BR)],
            ['addToBridge bridge', () => ops.tap.addToBridge('kittap0', bad)],
            ['bringUp', () => ops.tap.bringUp(bad)],
            ['deleteTap', () => ops.tap.deleteTap(bad)],
          ];
          if (lists) calls.push(['listBridgePorts', () => ops.bridge.listBridgePorts(bad)]);
          for (const [what, call] of calls) {
            await expectNetOpsError(call(), 'INVALID_ARGUMENT').catch((error: unknown) => {
              throw new Error(`${what}(${JSON.stringify(bad)}): ${(error as Error).message}`);
            });
          }
        }
        await expectNameFree(ops, 'kittap0');
      });
    });

    describe('port forwards', () => {
      test('addPortForward installs a forward; the identical rule again is created: false', async (ops) => {
        await ensureKitBridge(ops);
        expect(await ops.nat.addPortForward(forward(0))).toEqual({ created: true });
        expect(await ops.nat.addPortForward(forward(0))).toEqual({ created: false });
      });

      test('a different target on the same protocol and host port is CONFLICT and keeps the first', async (ops) => {
        await ensureKitBridge(ops);
        await ops.nat.addPortForward(forward(0));
        await expectNetOpsError(ops.nat.addPortForward(forward(0, { guestIp: '10.231.0.99' })), 'CONFLICT');
        await expectNetOpsError(ops.nat.addPortForward(forward(0, { guestPort: 9999 })), 'CONFLICT');
        expect(await ops.nat.addPortForward(forward(0))).toEqual({ created: false });
      });

      test('the same host port on the other protocol is a separate forward', async (ops) => {
        await ensureKitBridge(ops);
        expect((await ops.nat.addPortForward(forward(0))).created).toBe(true);
        expect(
          (await ops.nat.addPortForward(forward(0, { protocol: 'udp', guestIp: '10.231.0.99' }))).created,
        ).toBe(true);
        expect(await ops.nat.removePortForward(forward(0))).toEqual({ existed: true });
        expect(
          await ops.nat.removePortForward(forward(0, { protocol: 'udp', guestIp: '10.231.0.99' })),
        ).toEqual({
          existed: true,
        });
      });

      test('removePortForward removes the forward, then reports existed: false', async (ops) => {
        await ensureKitBridge(ops);
        await ops.nat.addPortForward(forward(0));
        expect(await ops.nat.removePortForward(forward(0))).toEqual({ existed: true });
        expect(await ops.nat.removePortForward(forward(0))).toEqual({ existed: false });
        // The port is free again for another target.
        expect(await ops.nat.addPortForward(forward(0, { guestIp: '10.231.0.99' }))).toEqual({
          created: true,
        });
      });

      test('removePortForward of a missing forward reports existed: false', async (ops) => {
        await ensureKitBridge(ops);
        expect(await ops.nat.removePortForward(forward(0))).toEqual({ existed: false });
      });

      test("removePortForward of someone else's forward is CONFLICT and keeps it", async (ops) => {
        await ensureKitBridge(ops);
        await ops.nat.addPortForward(forward(0));
        await expectNetOpsError(
          ops.nat.removePortForward(forward(0, { guestIp: '10.231.0.99' })),
          'CONFLICT',
        );
        await expectNetOpsError(ops.nat.removePortForward(forward(0, { guestPort: 9999 })), 'CONFLICT');
        expect(await ops.nat.addPortForward(forward(0))).toEqual({ created: false });
      });

      test('owner is kept aside, never part of the match', async (ops) => {
        await ensureKitBridge(ops);
        expect(await ops.nat.addPortForward(forward(0, { owner: 'vm-a' }))).toEqual({ created: true });
        expect(await ops.nat.addPortForward(forward(0, { owner: 'vm-b' }))).toEqual({ created: false });
        expect(await ops.nat.removePortForward(forward(0, { owner: 'vm-c' }))).toEqual({ existed: true });
      });

      test('listPortForwards follows adds and removes (UNSUPPORTED without the capability)', async (ops) => {
        await ensureKitBridge(ops);
        if (!ops.nat.capabilities.listPortForwards) {
          await expectNetOpsError(ops.nat.listPortForwards(), 'UNSUPPORTED');
          return;
        }
        expect(await ops.nat.listPortForwards()).toEqual([]);
        const rules = [forward(0), forward(1), forward(2, { protocol: 'udp' })];
        for (const rule of rules) await ops.nat.addPortForward(rule);
        expect(forwardKeys(await ops.nat.listPortForwards())).toEqual(forwardKeys(rules));
        await ops.nat.removePortForward(forward(1));
        expect(forwardKeys(await ops.nat.listPortForwards())).toEqual(forwardKeys([rules[0]!, rules[2]!]));
      });

      test('invalid rules are INVALID_ARGUMENT and install nothing', async (ops) => {
        await ensureKitBridge(ops);
        const invalid: unknown[] = [
          forward(0, { hostPort: 0 }),
          forward(0, { hostPort: 70000 }),
          forward(0, { hostPort: 1.5 }),
          { ...forward(0), hostPort: '40000' },
          forward(0, { guestPort: 0 }),
          forward(0, { guestPort: 65536 }),
          forward(0, { guestIp: '10.231.0.256' }),
          forward(0, { guestIp: 'kitbr0' }),
          forward(0, { guestIp: '10.231.0.10\n' }),
          forward(0, { guestIp: 'fd00:231::10' }),
          { ...forward(0), protocol: 'icmp' },
          { ...forward(0), extra: true },
          { protocol: 'tcp', hostPort: 40000 },
        ];
        for (const rule of invalid) {
          await expectNetOpsError(ops.nat.addPortForward(rule as PortForwardRule), 'INVALID_ARGUMENT');
          await expectNetOpsError(ops.nat.removePortForward(rule as PortForwardRule), 'INVALID_ARGUMENT');
        }
        if (ops.nat.capabilities.listPortForwards) expect(await ops.nat.listPortForwards()).toEqual([]);
        expect(await ops.nat.addPortForward(forward(0, { guestIp: '10.231.0.99' }))).toEqual({
          created: true,
        });
      });
    });

    describe('an already-aborted signal is ABORTED and changes nothing', () => {
      test('ensureBridge', async (ops) => {
        const { otherBridge, otherBridgeAddress } = conformanceFixtures;
        await expectNetOpsError(
          ops.bridge.ensureBridge({ name: otherBridge, address: otherBridgeAddress }, { signal: aborted() }),
          'ABORTED',
        );
        await expectNameFree(ops, otherBridge);
      });

      test('listBridgePorts', async (ops) => {
        await ensureKitBridge(ops);
        await expectNetOpsError(ops.bridge.listBridgePorts(BR, { signal: aborted() }), 'ABORTED');
      });

      test('createTap', async (ops) => {
        await expectNetOpsError(makeTap(ops, 'kittap0', {}, aborted()), 'ABORTED');
        await expectNameFree(ops, 'kittap0');
      });

      test('addToBridge', async (ops) => {
        await ensureKitBridge(ops);
        await makeTap(ops, 'kittap0');
        await expectNetOpsError(ops.tap.addToBridge('kittap0', BR, { signal: aborted() }), 'ABORTED');
        if (!isAtomic(ops) && ops.bridge.capabilities.listBridgePorts)
          expect(await portNames(ops)).toEqual([]);
      });

      test('bringUp', async (ops) => {
        await makeTap(ops, 'kittap0');
        await expectNetOpsError(ops.tap.bringUp('kittap0', { signal: aborted() }), 'ABORTED');
      });

      test('deleteTap', async (ops) => {
        await makeTap(ops, 'kittap0');
        await expectNetOpsError(ops.tap.deleteTap('kittap0', { signal: aborted() }), 'ABORTED');
        expect((await ops.tap.deleteTap('kittap0')).existed).toBe(true);
      });

      test('addPortForward', async (ops) => {
        await ensureKitBridge(ops);
        await expectNetOpsError(ops.nat.addPortForward(forward(0), { signal: aborted() }), 'ABORTED');
        expect(await ops.nat.addPortForward(forward(0))).toEqual({ created: true });
      });

      test('removePortForward', async (ops) => {
        await ensureKitBridge(ops);
        await ops.nat.addPortForward(forward(0));
        await expectNetOpsError(ops.nat.removePortForward(forward(0), { signal: aborted() }), 'ABORTED');
        expect(await ops.nat.removePortForward(forward(0))).toEqual({ existed: true });
      });

      test('listPortForwards', async (ops) => {
        await expectNetOpsError(ops.nat.listPortForwards({ signal: aborted() }), 'ABORTED');
      });
    });

    describe('concurrent calls', () => {
      test('20 TAPs attached and 20 forwards added at once, then all removed at once', async (ops) => {
        await ensureKitBridge(ops);
        const taps = Array.from({ length: 20 }, (_, i) => `kittap${i}`);
        const rules = taps.map((_, i) => forward(i));
        const attachTap = async (tap: string) => {
          if (isAtomic(ops)) return (await ops.tap.createTap({ name: tap, bridge: BR })).created;
          const { created } = await ops.tap.createTap({ name: tap });
          await ops.tap.addToBridge(tap, BR);
          await ops.tap.bringUp(tap);
          return created;
        };
        const [created, added] = await Promise.all([
          Promise.all(taps.map(attachTap)),
          Promise.all(rules.map((rule) => ops.nat.addPortForward(rule))),
        ]);
        expect(created).toEqual(taps.map(() => true));
        expect(added).toEqual(rules.map(() => ({ created: true })));
        if (ops.bridge.capabilities.listBridgePorts) expect(await portNames(ops)).toEqual([...taps].sort());
        if (ops.nat.capabilities.listPortForwards) {
          expect(forwardKeys(await ops.nat.listPortForwards())).toEqual(forwardKeys(rules));
        }

        const [deleted, removed] = await Promise.all([
          Promise.all(taps.map((tap) => ops.tap.deleteTap(tap))),
          Promise.all(rules.map((rule) => ops.nat.removePortForward(rule))),
        ]);
        expect(deleted).toEqual(taps.map((name) => ({ name, existed: true })));
        expect(removed).toEqual(rules.map(() => ({ existed: true })));
        if (ops.bridge.capabilities.listBridgePorts) expect(await portNames(ops)).toEqual([]);
        if (ops.nat.capabilities.listPortForwards) expect(await ops.nat.listPortForwards()).toEqual([]);
        expect((await ops.tap.deleteTap('kittap7')).existed).toBe(false);
      });

      test('one TAP created five times at once: exactly one reports created', async (ops) => {
        await ensureKitBridge(ops);
        const results = await Promise.all(Array.from({ length: 5 }, () => makeTap(ops, 'kittap0')));
        expect(results.filter((r) => r.created)).toHaveLength(1);
        expect(results.every((r) => r.name === 'kittap0')).toBe(true);
      });

      test('one bridge ensured five times at once: exactly one reports created', async (ops) => {
        const results = await Promise.all(Array.from({ length: 5 }, () => ensureKitBridge(ops)));
        expect(results.filter((r) => r.created)).toHaveLength(1);
      });

      test('forwards on one host port at once: identical ones created once, conflicting ones lose', async (ops) => {
        await ensureKitBridge(ops);
        const identical = await Promise.all(
          Array.from({ length: 5 }, () => ops.nat.addPortForward(forward(0))),
        );
        expect(identical.filter((r) => r.created)).toHaveLength(1);

        const targets = Array.from({ length: 5 }, (_, i) => forward(1, { guestIp: `10.231.0.${100 + i}` }));
        const settled = await Promise.allSettled(targets.map((rule) => ops.nat.addPortForward(rule)));
        expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(1);
        for (const s of settled) {
          if (s.status === 'rejected') await expectNetOpsError(Promise.reject(s.reason), 'CONFLICT');
        }
      });
    });
  };

  if (skip) {
    console.warn(`skipped: ${name} because ${skip}`);
    describe.skip(`${name} (skipped: ${skip})`, body);
    return;
  }
  describe(name, { concurrent: false }, body);
}
