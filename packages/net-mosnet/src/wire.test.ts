import { isIPv6, validateInterfaceName } from '@my-hypervisor/net-ops';
import { hostileInterfaceNames } from '@my-hypervisor/net-ops/testing';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { bridgeAddParamsSchema, createTapParamsSchema, forwardParamsSchema } from './methods.js';
import {
  apiFieldName,
  bridgeParamsToSpec,
  bridgeSpecToParams,
  forwardParamsToRule,
  parseWireParams,
  ruleToForwardParams,
  tapParamsToSpec,
  tapSpecToParams,
} from './wire.js';

describe('wire conversions', () => {
  it('round-trip specs and rules through snake_case params, leaving absent fields absent', () => {
    const bridge = { name: 'br0', address: '10.0.0.1/24', mtu: 1500, ipv6Address: 'fd00::1/64' };
    expect(bridgeParamsToSpec(bridgeSpecToParams(bridge))).toEqual(bridge);
    expect(bridgeSpecToParams({ name: 'br0', address: '10.0.0.1/24' })).toEqual({
      name: 'br0',
      address: '10.0.0.1/24',
    });
    const tap = { name: 't', bridge: 'br0', mtu: 1500, multiQueue: false, owner: { uid: 1, gid: 2 } };
    expect(tapParamsToSpec(createTapParamsSchema.parse(tapSpecToParams(tap)))).toEqual(tap);
    const rule = {
      protocol: 'tcp',
      hostPort: 1,
      guestIp: '10.0.0.2',
      guestPort: 2,
      hostIp: '1.2.3.4',
      owner: 'o',
    } as const;
    expect(forwardParamsToRule(forwardParamsSchema.parse(ruleToForwardParams(rule)))).toEqual(rule);
  });

  it('names a bad wire field the way the API spells it', () => {
    expect(apiFieldName(['host_port'], 'rule')).toBe('rule.hostPort');
    expect(apiFieldName(['owner', 'uid'])).toBe('owner.uid');
    expect(apiFieldName([])).toBe('params');
    expect(() =>
      parseWireParams(z.strictObject({ multi_queue: z.boolean() }), { multi_queue: 1 }, apiFieldName),
    ).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', details: { field: 'multiQueue' } }));
  });
});

describe('the wire interface-name rule', () => {
  it('agrees with validateInterfaceName on hostile and good names', () => {
    const name = createTapParamsSchema.shape.name;
    const good = ['br0', 'tap-1', 'a.b_c', 'kittap012345678', 'x', 'default0', 'allx'];
    for (const value of [...hostileInterfaceNames, ...good]) {
      let valid = true;
      try {
        validateInterfaceName(value);
      } catch {
        valid = false;
      }
      expect(name.safeParse(value).success, JSON.stringify(value)).toBe(valid);
    }
  });
});

describe('the wire IPv6 CIDR rule', () => {
  // A small deterministic generator (mulberry32), so a failure names a value that reproduces.
  function random(seed: number): () => number {
    let state = seed;
    return () => {
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), 1 | state);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  it('is one pattern that agrees with net-ops isIPv6 on the address before the prefix', () => {
    const rule = bridgeAddParamsSchema.shape.ipv6_address;
    const next = random(42);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
    // Valid addresses with their zero runs compressed anywhere, and near misses built from the same pieces.
    const group = () =>
      next() < 0.05 ? pick(['12345', 'g1', '']) : pick(['0', '1', 'ff', 'abc', 'FFFF', '0db8']);
    const generated: string[] = [];
    for (let n = 0; n < 10_000; n++) {
      const count = Math.floor(next() * 10);
      const parts = Array.from({ length: count }, group);
      if (next() < 0.3) parts.push(pick(['1.2.3.4', '192.0.2.255', '256.1.1.1', '1.2.3', '01.2.3.4']));
      let text = parts.join(':');
      if (next() < 0.6) {
        const at = Math.floor(next() * (text.length + 1));
        text = `${text.slice(0, at)}${pick(['::', ':', ':::'])}${text.slice(at)}`;
      }
      generated.push(text);
    }
    const valid = generated.filter((address) => isIPv6(address)).length;
    const disagreements = generated.filter(
      (address) => rule.safeParse(`${address}/64`).success !== isIPv6(address),
    );
    expect(disagreements).toEqual([]);
    // The generator reaches both sides often enough for the comparison to mean something.
    expect(valid).toBeGreaterThan(1_000);
    expect(generated.length - valid).toBeGreaterThan(1_000);
  });
});
