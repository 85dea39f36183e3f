import { describe, expect, it } from 'vitest';
import { deriveMac, deriveTapName, formatKernelIpArg } from './derive.js';
import { NetOpsError } from './errors.js';
import { validateInterfaceName, validateMac } from './validation.js';

function codeOf(fn: () => unknown): { code: string; field: unknown } | undefined {
  try {
    fn();
  } catch (error) {
    if (NetOpsError.isInstance(error)) return { code: error.code, field: error.details.field };
    throw error;
  }
  return undefined;
}

const ids = Array.from({ length: 10_000 }, (_, i) => `vm-${i}`);

describe('deriveTapName', () => {
  it('is a valid name of at most 15 bytes, stable, and distinct for 10,000 ids', () => {
    const names = new Set<string>();
    for (const id of ids) {
      const name = deriveTapName(id);
      expect(Buffer.byteLength(name)).toBeLessThanOrEqual(15);
      expect(validateInterfaceName(name)).toBe(name);
      expect(name.startsWith('myhv')).toBe(true);
      names.add(name);
    }
    expect(names.size).toBe(ids.length);
    expect(deriveTapName('vm-1')).toBe(deriveTapName('vm-1'));
    // Pinned: a changed derivation would orphan every existing TAP.
    expect(deriveTapName('vm-1')).toBe(deriveTapName('vm-1', 'myhv'));
    expect(deriveTapName('vm-1')).toMatch(/^myhv[0-9a-f]{11}$/);
  });

  it('uses the prefix and fills to 15 bytes', () => {
    expect(deriveTapName('vm-1', 'tap')).toMatch(/^tap[0-9a-f]{12}$/);
    expect(deriveTapName('vm-1', 'abcdefghi')).toMatch(/^abcdefghi[0-9a-f]{6}$/);
  });

  it('handles ids with any characters (they are hashed, never embedded)', () => {
    for (const id of ['a b', 'a;b', '../x', 'ä', '\n'])
      expect(validateInterfaceName(deriveTapName(id))).toBeTruthy();
  });

  it.each(['abcdefghij', 'bad prefix', '', '-x'])('rejects the prefix %j', (prefix) => {
    expect(codeOf(() => deriveTapName('vm-1', prefix))).toEqual({
      code: 'INVALID_ARGUMENT',
      field: 'prefix',
    });
  });

  it('rejects an empty id', () => {
    expect(codeOf(() => deriveTapName(''))).toEqual({ code: 'INVALID_ARGUMENT', field: 'vmId' });
  });
});

describe('deriveMac', () => {
  it('is a locally administered unicast MAC, stable, and distinct for 10,000 ids', () => {
    const macs = new Set<string>();
    for (const id of ids) {
      const mac = deriveMac(id);
      expect(validateMac(mac)).toBe(mac);
      macs.add(mac);
    }
    expect(macs.size).toBe(ids.length);
    expect(deriveMac('vm-1')).toBe(deriveMac('vm-1'));
    expect(deriveMac('vm-1')).not.toBe(deriveMac('vm-2'));
  });
});

describe('formatKernelIpArg', () => {
  const base = { ipv4: '10.231.0.10', gateway: '10.231.0.1', netmask: '255.255.255.0' };

  it('formats ip=<guest>::<gw>:<mask>:<host>:<dev>:off', () => {
    expect(formatKernelIpArg(base)).toBe('ip=10.231.0.10::10.231.0.1:255.255.255.0::eth0:off');
    expect(formatKernelIpArg({ ...base, hostname: 'vm-1', device: 'ens3' })).toBe(
      'ip=10.231.0.10::10.231.0.1:255.255.255.0:vm-1:ens3:off',
    );
  });

  it.each([
    [{ hostname: 'vm init=/bin/sh' }, 'hostname'],
    [{ hostname: 'vm:1' }, 'hostname'],
    [{ device: 'eth0 rw' }, 'device'],
    [{ ipv4: '10.231.0.10 quiet' }, 'ipv4'],
    [{ gateway: '10.231.0.1:x' }, 'gateway'],
    [{ netmask: '24' }, 'netmask'],
  ])('rejects %o (it would inject into the kernel command line)', (override, field) => {
    expect(codeOf(() => formatKernelIpArg({ ...base, ...override }))).toEqual({
      code: 'INVALID_ARGUMENT',
      field,
    });
  });
});
