import { describe, expect, it } from 'vitest';
import { NetOpsError } from './errors.js';
import {
  type PortForwardRule,
  parsePortForwardRule,
  portForwardKey,
  samePortForward,
} from './port-forward.js';

const rule: PortForwardRule = { protocol: 'tcp', hostPort: 8080, guestIp: '10.231.0.10', guestPort: 80 };

function fieldOf(input: unknown): unknown {
  try {
    parsePortForwardRule(input);
  } catch (error) {
    if (NetOpsError.isInstance(error) && error.code === 'INVALID_ARGUMENT') return error.details.field;
    throw error;
  }
  return undefined;
}

describe('parsePortForwardRule', () => {
  it('accepts a full rule', () => {
    const full = { ...rule, protocol: 'udp', hostIp: '127.0.0.1', owner: 'vm-1:web' };
    expect(parsePortForwardRule(full)).toEqual(full);
  });

  it.each([
    [{ ...rule, hostPort: 0 }, 'rule.hostPort'],
    [{ ...rule, hostPort: 65536 }, 'rule.hostPort'],
    [{ ...rule, hostPort: 70000 }, 'rule.hostPort'],
    [{ ...rule, hostPort: 1.5 }, 'rule.hostPort'],
    [{ ...rule, hostPort: '80' }, 'rule.hostPort'],
    [{ ...rule, hostPort: Number.NaN }, 'rule.hostPort'],
    [{ ...rule, guestPort: 0 }, 'rule.guestPort'],
    [{ ...rule, guestPort: -80 }, 'rule.guestPort'],
    [{ ...rule, guestIp: '10.231.0.256' }, 'rule.guestIp'],
    [{ ...rule, guestIp: '10.231.0.10\n' }, 'rule.guestIp'],
    [{ ...rule, guestIp: '10.231.0.10; reboot' }, 'rule.guestIp'],
    [{ ...rule, guestIp: '::1' }, 'rule.guestIp'],
    [{ ...rule, hostIp: 'localhost' }, 'rule.hostIp'],
    [{ ...rule, protocol: 'icmp' }, 'rule.protocol'],
    [{ ...rule, protocol: 'TCP' }, 'rule.protocol'],
    [{ ...rule, owner: '' }, 'rule.owner'],
    [{ ...rule, owner: 'vm 1' }, 'rule.owner'],
    [{ ...rule, owner: 'vm\n1' }, 'rule.owner'],
    [{ ...rule, owner: 'vm/1' }, 'rule.owner'],
    [{ ...rule, owner: 'x'.repeat(129) }, 'rule.owner'],
    [{ ...rule, extra: 1 }, 'rule'],
    [{ protocol: 'tcp', hostPort: 80 }, 'rule.guestIp'],
    [null, 'rule'],
    ['tcp:80', 'rule'],
  ])('rejects %o naming %s', (input, field) => {
    expect(fieldOf(input)).toBe(field);
  });

  it('names a custom field prefix', () => {
    try {
      parsePortForwardRule({ ...rule, hostPort: 0 }, 'forwards.2');
    } catch (error) {
      expect(NetOpsError.isInstance(error) && error.details.field).toBe('forwards.2.hostPort');
      return;
    }
    throw new Error('expected INVALID_ARGUMENT');
  });
});

describe('portForwardKey / samePortForward', () => {
  it('keys by protocol and host port only', () => {
    expect(portForwardKey(rule)).toBe('tcp/8080');
    expect(portForwardKey({ ...rule, protocol: 'udp' })).toBe('udp/8080');
  });

  it('compares target and hostIp, never owner', () => {
    expect(samePortForward(rule, { ...rule, owner: 'someone' })).toBe(true);
    expect(samePortForward(rule, { ...rule, guestIp: '10.231.0.11' })).toBe(false);
    expect(samePortForward(rule, { ...rule, guestPort: 81 })).toBe(false);
    expect(samePortForward(rule, { ...rule, hostIp: '127.0.0.1' })).toBe(false);
    expect(samePortForward({ ...rule, hostIp: undefined }, rule)).toBe(true);
    expect(samePortForward(rule, { ...rule, protocol: 'udp' })).toBe(false);
  });
});
