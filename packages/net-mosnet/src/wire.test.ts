import { validateInterfaceName } from '@my-hypervisor/net-ops';
import { hostileInterfaceNames } from '@my-hypervisor/net-ops/testing';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createTapParamsSchema, forwardParamsSchema } from './methods.js';
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
