import { describe, expect, it } from 'vitest';
import { NetOpsError } from './errors.js';
import {
  formatIPv6,
  ipv4InCidr,
  ipv4ToNumber,
  isIPv4,
  isIPv6,
  numberToIPv4,
  parseIPv4Cidr,
  parseIPv6,
  parseIPv6Cidr,
  parseVmSubnet,
  validateHostname,
  validateInterfaceName,
  validateIPv4,
  validateIPv6,
  validateMac,
  validateMtu,
  validatePort,
  validateTapOwner,
} from './validation.js';

/** Calls `fn` and returns the NetOpsError it throws (failing the test if it throws anything else or nothing). */
function thrown(fn: () => unknown): NetOpsError {
  try {
    fn();
  } catch (error) {
    if (NetOpsError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected a NetOpsError, nothing was thrown');
}

function expectInvalid(fn: () => unknown, field: string): void {
  const error = thrown(fn);
  expect(error.code).toBe('INVALID_ARGUMENT');
  expect(error.details.field).toBe(field);
}

/** Input no helper may accept: injection characters, traversal, too long, empty, non-ASCII, NUL. */
const hostile = [
  'a\nb',
  'a b',
  'a;b',
  'a/b',
  '..',
  '.',
  'abcdefghijklmnop',
  '',
  'ä',
  'tap\u00e40',
  'a\u0000b',
  '$(id)',
  '`id`',
  'a|b',
  'a&b',
  'a>b',
  "a'b",
  'a"b',
  'a\\b',
  '-a',
  'all',
  'default',
];

describe('validateInterfaceName', () => {
  it.each(['a', 'br0', 'myhv-br.0', 'tap_1', 'A'.repeat(15), '0'])('accepts %j', (name) => {
    expect(validateInterfaceName(name)).toBe(name);
  });

  it.each(hostile)('rejects %j with INVALID_ARGUMENT naming the field', (name) => {
    expectInvalid(() => validateInterfaceName(name, 'bridgeName'), 'bridgeName');
  });

  it.each([undefined, null, 42, {}, ['br0']])('rejects the non-string %j', (name) => {
    expectInvalid(() => validateInterfaceName(name), 'name');
  });

  it('counts bytes: 15 ASCII bytes pass, 16 fail', () => {
    expect(validateInterfaceName('a'.repeat(15))).toHaveLength(15);
    expectInvalid(() => validateInterfaceName('a'.repeat(16)), 'name');
  });
});

describe('validateIPv4 / isIPv4', () => {
  it.each(['0.0.0.0', '10.231.0.1', '255.255.255.255', '1.2.3.4'])('accepts %s', (ip) => {
    expect(validateIPv4(ip)).toBe(ip);
    expect(isIPv4(ip)).toBe(true);
  });

  it.each([
    '256.0.0.1',
    '1.2.3',
    '1.2.3.4.5',
    '01.2.3.4',
    '1.2.3.04',
    ' 1.2.3.4',
    '1.2.3.4\n',
    '1.2.3.4/24',
    '::1',
    '',
    '1.2.3.-1',
    '0x1.2.3.4',
    ...hostile,
  ])('rejects %j', (ip) => {
    expectInvalid(() => validateIPv4(ip, 'guestIp'), 'guestIp');
    expect(isIPv4(ip)).toBe(false);
  });

  it('converts to and from numbers', () => {
    expect(ipv4ToNumber('255.255.255.255')).toBe(0xffffffff);
    expect(ipv4ToNumber('10.231.0.1')).toBe(0x0ae70001);
    expect(numberToIPv4(0x0ae70001)).toBe('10.231.0.1');
    expect(numberToIPv4(0)).toBe('0.0.0.0');
  });
});

describe('IPv6', () => {
  it.each([
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['1:0:0:2:2:0:0:3', '1::2:2:0:0:3'],
    ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
    ['::ffff:10.231.0.1', '::ffff:ae7:1'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
  ])('accepts %s as %s', (input, canonical) => {
    expect(validateIPv6(input)).toBe(canonical);
    expect(isIPv6(input)).toBe(true);
  });

  it.each([
    ':',
    ':::',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8::',
    '12345::',
    'g::',
    ':1::',
    '1:',
    '1.2.3.4',
    '::1.2.3',
    '1:2:3:4:5:6:7:1.2.3.4',
    'fe80::1%eth0',
    '::1/128',
    ...hostile,
  ])('rejects %j', (input) => {
    expectInvalid(() => validateIPv6(input, 'ipv6'), 'ipv6');
    expect(isIPv6(input)).toBe(false);
  });

  it('formatIPv6 compresses the first longest zero run only', () => {
    expect(formatIPv6([0, 0, 1, 0, 0, 0, 1, 0])).toBe('0:0:1::1:0');
    expect(formatIPv6([1, 0, 0, 1, 0, 0, 1, 1])).toBe('1::1:0:0:1:1');
    expect(formatIPv6(parseIPv6('0:0:0:0:0:0:0:0')!)).toBe('::');
  });

  it('parseIPv6Cidr clears the host bits and keeps the prefix', () => {
    expect(parseIPv6Cidr('4a2:e1f0:1b3c:9d7e:1:2:3:4/64')).toEqual({
      address: '4a2:e1f0:1b3c:9d7e:1:2:3:4',
      prefixLength: 64,
      network: '4a2:e1f0:1b3c:9d7e::',
      networkGroups: [0x4a2, 0xe1f0, 0x1b3c, 0x9d7e, 0, 0, 0, 0],
    });
    expect(parseIPv6Cidr('5ff:ffff::/7').network).toBe('400::');
    expect(parseIPv6Cidr('::1/128').network).toBe('::1');
    expect(parseIPv6Cidr('ffff::/0').network).toBe('::');
  });

  it.each(['fd00::1', 'fd00::1/129', 'fd00::1/-1', 'fd00::1/64 ', '10.0.0.0/8', '/64', 'x/64', 42])(
    'parseIPv6Cidr rejects %j',
    (input) => expectInvalid(() => parseIPv6Cidr(input, 'ipv6Address'), 'ipv6Address'),
  );
});

describe('CIDRs', () => {
  it('parseIPv4Cidr computes network, broadcast, netmask, gateway and usable hosts', () => {
    expect(parseIPv4Cidr('10.231.0.77/24')).toEqual({
      address: '10.231.0.77',
      prefixLength: 24,
      network: '10.231.0.0',
      broadcast: '10.231.0.255',
      netmask: '255.255.255.0',
      gateway: '10.231.0.1',
      usableHosts: 253,
    });
    expect(parseIPv4Cidr('10.231.0.0/30')).toMatchObject({ broadcast: '10.231.0.3', usableHosts: 1 });
    expect(parseIPv4Cidr('0.0.0.0/0')).toMatchObject({ netmask: '0.0.0.0', broadcast: '255.255.255.255' });
  });

  it.each([
    '10.231.0.0',
    '10.231.0.0/33',
    '10.231.0.0/',
    '10.231.0.256/24',
    '10.231.0.0/24\n',
    '/24',
    ...hostile,
  ])('parseIPv4Cidr rejects %j', (cidr) => expectInvalid(() => parseIPv4Cidr(cidr, 'address'), 'address'));

  it.each(['10.231.0.0/31', '10.231.0.0/32', '10.0.0.0/7', '0.0.0.0/0'])('parseVmSubnet rejects %s', (cidr) =>
    expectInvalid(() => parseVmSubnet(cidr), 'subnet'),
  );

  it.each(['10.231.0.0/30', '10.231.0.0/24', '10.0.0.0/8'])('parseVmSubnet accepts %s', (cidr) => {
    expect(parseVmSubnet(cidr).prefixLength).toBe(Number(cidr.split('/')[1]));
  });

  it('ipv4InCidr includes the network and broadcast and nothing outside', () => {
    const cidr = parseIPv4Cidr('10.231.0.0/24');
    expect(ipv4InCidr('10.231.0.0', cidr)).toBe(true);
    expect(ipv4InCidr('10.231.0.255', cidr)).toBe(true);
    expect(ipv4InCidr('10.231.1.0', cidr)).toBe(false);
    expect(ipv4InCidr('10.230.255.255', cidr)).toBe(false);
  });
});

describe('validatePort', () => {
  it.each([1, 80, 65535])('accepts %d', (port) => expect(validatePort(port)).toBe(port));

  it.each([0, 65536, -1, 1.5, '80', Number.NaN, Number.POSITIVE_INFINITY, null, undefined])(
    'rejects %j',
    (port) => expectInvalid(() => validatePort(port, 'hostPort'), 'hostPort'),
  );
});

describe('validateMtu', () => {
  it.each([68, 1500, 9000, 65535])('accepts %d', (mtu) => expect(validateMtu(mtu)).toBe(mtu));
  it.each([0, 67, 65536, 1500.5, '1500', Number.NaN])('rejects %j', (mtu) =>
    expectInvalid(() => validateMtu(mtu), 'mtu'),
  );
});

describe('validateTapOwner', () => {
  it('accepts user and group ids', () => {
    expect(validateTapOwner({ uid: 0, gid: 0 })).toEqual({ uid: 0, gid: 0 });
    expect(validateTapOwner({ uid: 1000, gid: 2 ** 32 - 2 })).toEqual({ uid: 1000, gid: 2 ** 32 - 2 });
  });
  it('names the field that is wrong', () => {
    expectInvalid(() => validateTapOwner(null), 'owner');
    expectInvalid(() => validateTapOwner({ uid: -1, gid: 0 }), 'owner.uid');
    expectInvalid(() => validateTapOwner({ uid: 0, gid: 2 ** 32 - 1 }), 'owner.gid');
    expectInvalid(() => validateTapOwner({ uid: '0', gid: 0 }, 'tap.owner'), 'tap.owner.uid');
  });
});

describe('validateMac', () => {
  it.each([
    ['02:00:00:00:00:00', '02:00:00:00:00:00'],
    ['52:54:00:AB:CD:EF', '52:54:00:ab:cd:ef'],
    ['fe:ff:ff:ff:ff:ff', 'fe:ff:ff:ff:ff:ff'],
  ])('accepts the locally administered unicast %s', (mac, normal) => {
    expect(validateMac(mac)).toBe(normal);
  });

  it.each([
    '00:16:3e:00:00:01', // universally administered (a vendor's)
    '03:00:00:00:00:00', // multicast
    '01:00:5e:00:00:01', // multicast
    'ff:ff:ff:ff:ff:ff', // broadcast
    '02-00-00-00-00-00',
    '02:00:00:00:00',
    '02:00:00:00:00:00:00',
    '020000000000',
    '02:00:00:00:00:0g',
    '02:00:00:00:00:00\n',
    ...hostile,
  ])('rejects %j', (mac) => expectInvalid(() => validateMac(mac), 'mac'));
});

describe('validateHostname', () => {
  it.each(['vm1', 'vm-1', 'vm_1', 'vm-', 'a.b.c', 'A'.repeat(63), 'x'.repeat(64)])('accepts %s', (name) => {
    expect(validateHostname(name)).toBe(name);
  });

  it.each([
    '',
    '-vm',
    '.vm',
    '_vm',
    'vm:1',
    'vm 1',
    'vm\n',
    'vm=1',
    'x'.repeat(65),
    ...hostile.filter((h) => !['all', 'default', 'abcdefghijklmnop'].includes(h)),
  ])('rejects %j', (name) => expectInvalid(() => validateHostname(name), 'hostname'));
});
