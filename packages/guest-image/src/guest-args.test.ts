import { describe, expect, it } from 'vitest';
import { GuestImageError } from './errors.js';
import {
  formatGuestArgs,
  type GuestArgs,
  parseGuestArgs,
  parseReadyLine,
  READY_PREFIX,
  validateGuestArgs,
} from './guest-args.js';

const full: GuestArgs = {
  ip: { address: '10.62.0.5', prefixLength: 24 },
  gateway: '10.62.0.1',
  dns: ['10.62.0.1', '1.1.1.1', '2606:4700:4700::1111'],
  mtu: 1500,
  hostname: 'vm1.example',
  ip6: { address: 'fd00::5', prefixLength: 64 },
  gateway6: 'fd00::1',
  shares: [
    { tag: 'data', path: '/mnt/data' },
    { tag: 'logs.v2_x-1', path: '/var/log/app+1@x=y,z' },
  ],
  command: `printf '%s\\n' "héllo wörld" 'it''s' ; echo $HOME && exit 3\n`,
};

function fieldOf(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    if (!GuestImageError.isInstance(error)) throw error;
    expect(error.code).toBe('INVALID_ARGUMENT');
    return error.details.field;
  }
  throw new Error('did not throw');
}

describe('formatGuestArgs / parseGuestArgs', () => {
  it('writes the documented tokens in a fixed order', () => {
    expect(formatGuestArgs({ ...full, command: 'echo hi' }).split(' ')).toEqual([
      'myhv.ip=10.62.0.5/24',
      'myhv.gw=10.62.0.1',
      'myhv.dns=10.62.0.1,1.1.1.1,2606:4700:4700::1111',
      'myhv.mtu=1500',
      'myhv.hostname=vm1.example',
      'myhv.ip6=fd00::5/64',
      'myhv.gw6=fd00::1',
      'myhv.share=data:/mnt/data',
      'myhv.share=logs.v2_x-1:/var/log/app+1@x=y,z',
      `myhv.cmd=${Buffer.from('echo hi').toString('base64url')}`,
    ]);
  });

  it.each<[string, GuestArgs]>([
    ['everything', full],
    ['nothing', {}],
    [
      'only a command with every kind of character',
      { command: 'a\tb\nc "d" \'e\' $f `g` \\ ; | & 😀 \u00e9' },
    ],
    ['IPv6 only', { ip6: { address: '2001:db8::1', prefixLength: 128 }, gateway6: 'fe80::1' }],
    ['edge values', { ip: { address: '0.0.0.0', prefixLength: 0 }, mtu: 68, hostname: 'a'.repeat(63) }],
    [
      'max values',
      {
        ip: { address: '255.255.255.255', prefixLength: 32 },
        mtu: 65535,
        hostname: `${'a'.repeat(31)}.${'b'.repeat(32)}`,
      },
    ],
  ])('round-trips %s', (_name, args) => {
    const cmdline = formatGuestArgs(args);
    expect(cmdline).not.toMatch(/["'\n;]/);
    expect(parseGuestArgs(cmdline)).toEqual(args);
  });

  it('parses a whole kernel command line: other tokens and unknown myhv. keys are ignored', () => {
    const cmdline = `console=ttyS0 root=/dev/vda  ip=1.2.3.4 myhvx=1 myhv.future=anything "myhv.quoted=a b" ${formatGuestArgs(full)} panic=1\n`;
    expect(parseGuestArgs(cmdline)).toEqual(full);
    expect(formatGuestArgs(full)).not.toContain('myhv.future');
  });

  it.each<[string, GuestArgs, string]>([
    ['address with a space', { ip: { address: '10.0.0.1 ', prefixLength: 24 } }, 'ip'],
    ['address with leading zero', { ip: { address: '10.0.0.01', prefixLength: 24 } }, 'ip'],
    ['octet above 255', { ip: { address: '10.0.0.256', prefixLength: 24 } }, 'ip'],
    ['IPv6 as ip', { ip: { address: 'fd00::1', prefixLength: 24 } }, 'ip'],
    ['prefix 33', { ip: { address: '10.0.0.1', prefixLength: 33 } }, 'ip'],
    ['prefix -1', { ip: { address: '10.0.0.1', prefixLength: -1 } }, 'ip'],
    ['prefix 1.5', { ip: { address: '10.0.0.1', prefixLength: 1.5 } }, 'ip'],
    ['gateway without ip', { gateway: '10.0.0.1' }, 'gateway'],
    [
      'gateway with a semicolon',
      { ip: { address: '10.0.0.5', prefixLength: 24 }, gateway: '10.0.0.1;reboot' },
      'gateway',
    ],
    ['empty dns', { dns: [] }, 'dns'],
    ['four dns servers', { dns: ['1.1.1.1', '1.0.0.1', '8.8.8.8', '8.8.4.4'] }, 'dns'],
    ['dns name', { dns: ['dns.google'] }, 'dns'],
    ['dns with a comma', { dns: ['1.1.1.1,8.8.8.8'] }, 'dns'],
    ['mtu 67', { mtu: 67 }, 'mtu'],
    ['mtu 65536', { mtu: 65536 }, 'mtu'],
    ['mtu NaN', { mtu: Number.NaN }, 'mtu'],
    ['hostname of 65 characters', { hostname: `${'a'.repeat(32)}.${'b'.repeat(32)}` }, 'hostname'],
    ['hostname label of 64', { hostname: 'a'.repeat(64) }, 'hostname'],
    ['hostname with underscore', { hostname: 'my_vm' }, 'hostname'],
    ['hostname with a quote', { hostname: "vm'1" }, 'hostname'],
    ['hostname with a newline', { hostname: 'vm\n1' }, 'hostname'],
    ['hostname starting with -', { hostname: '-vm' }, 'hostname'],
    ['hostname with empty label', { hostname: 'vm..x' }, 'hostname'],
    ['IPv4-mapped ip6', { ip6: { address: '::ffff:1.2.3.4', prefixLength: 64 } }, 'ip6'],
    ['ip6 with zone', { ip6: { address: 'fe80::1%eth0', prefixLength: 64 } }, 'ip6'],
    ['ip6 prefix 129', { ip6: { address: 'fd00::1', prefixLength: 129 } }, 'ip6'],
    ['gateway6 without ip6', { gateway6: 'fd00::1' }, 'gateway6'],
    ['relative share path', { shares: [{ tag: 'a', path: 'mnt/a' }] }, 'shares'],
    ['share path with ..', { shares: [{ tag: 'a', path: '/mnt/../etc' }] }, 'shares'],
    ['share path with .', { shares: [{ tag: 'a', path: '/mnt/./a' }] }, 'shares'],
    ['share path with //', { shares: [{ tag: 'a', path: '/mnt//a' }] }, 'shares'],
    ['share path with trailing /', { shares: [{ tag: 'a', path: '/mnt/a/' }] }, 'shares'],
    ['share at /', { shares: [{ tag: 'a', path: '/' }] }, 'shares'],
    ['share path with a space', { shares: [{ tag: 'a', path: '/mnt/my data' }] }, 'shares'],
    ['share path with a quote', { shares: [{ tag: 'a', path: '/mnt/"a"' }] }, 'shares'],
    ['share path with a colon', { shares: [{ tag: 'a', path: '/mnt/a:b' }] }, 'shares'],
    ['share path too long', { shares: [{ tag: 'a', path: `/${'a'.repeat(255)}` }] }, 'shares'],
    ['share tag with a colon', { shares: [{ tag: 'a:b', path: '/mnt/a' }] }, 'shares'],
    ['share tag of 37', { shares: [{ tag: 'a'.repeat(37), path: '/mnt/a' }] }, 'shares'],
    ['empty share tag', { shares: [{ tag: '', path: '/mnt/a' }] }, 'shares'],
    [
      'duplicate share tag',
      {
        shares: [
          { tag: 'a', path: '/mnt/a' },
          { tag: 'a', path: '/mnt/b' },
        ],
      },
      'shares',
    ],
    [
      'duplicate share path',
      {
        shares: [
          { tag: 'a', path: '/mnt/a' },
          { tag: 'b', path: '/mnt/a' },
        ],
      },
      'shares',
    ],
    ['empty command', { command: '' }, 'command'],
    ['command with NUL', { command: 'echo\0' }, 'command'],
    ['command with a lone surrogate', { command: 'echo \ud800' }, 'command'],
  ])('refuses %s, naming the field', (_name, args, field) => {
    expect(fieldOf(() => formatGuestArgs(args))).toBe(field);
    expect(fieldOf(() => validateGuestArgs(args))).toBe(field);
  });

  it('names the share at fault', () => {
    try {
      formatGuestArgs({
        shares: [
          { tag: 'a', path: '/a' },
          { tag: 'b', path: 'b' },
        ],
      });
      expect.unreachable();
    } catch (error) {
      expect(GuestImageError.isInstance(error) && error.details).toMatchObject({ field: 'shares', index: 1 });
    }
  });

  it.each<[string, string]>([
    ['myhv.mtu=9x', 'mtu'],
    ['myhv.mtu=01500', 'mtu'],
    ['myhv.mtu=', 'mtu'],
    ['myhv.mtu', 'mtu'],
    ['myhv.ip=10.0.0.5', 'ip'],
    ['myhv.ip=10.0.0.5/024', 'ip'],
    ['myhv.ip=10.0.0.5/24/1', 'ip'],
    ['myhv.ip=10.0.0.5/24 myhv.ip=10.0.0.6/24', 'ip'],
    ['myhv.ip6=fd00::5', 'ip6'],
    ['myhv.dns=1.1.1.1,', 'dns'],
    ['myhv.share=data', 'shares'],
    ['myhv.share=data:/a myhv.share=data:/b', 'shares'],
    ['myhv.cmd=ZWNobw==', 'command'],
    ['myhv.cmd=ZWNobw+', 'command'],
    ['myhv.cmd=ZWNob', 'command'],
    ['myhv.cmd=ZWNobx', 'command'],
    [`myhv.cmd=${Buffer.from([0xff, 0xfe]).toString('base64url')}`, 'command'],
    ["myhv.hostname='vm1'", 'hostname'],
    ['myhv.gw=10.0.0.1', 'gateway'],
  ])('parse refuses %s, naming the field', (cmdline, field) => {
    expect(fieldOf(() => parseGuestArgs(`console=ttyS0 ${cmdline} quiet`))).toBe(field);
  });
});

describe('parseReadyLine', () => {
  it('reads the ready line the init prints', () => {
    expect(parseReadyLine(`${READY_PREFIX} ip=10.62.0.5 shares=data,logs\r\n`)).toEqual({
      ip: '10.62.0.5',
      shares: ['data', 'logs'],
    });
    expect(parseReadyLine('myhv-guest: ready ip=none shares=none')).toEqual({ shares: [] });
    expect(parseReadyLine('myhv-guest: ready ip=10.0.0.1 shares=none ip6=fd00::1 later=1')).toEqual({
      ip: '10.0.0.1',
      shares: [],
    });
  });

  it('is undefined for other console lines', () => {
    for (const line of [
      '',
      '[    0.000000] Linux version 6.1.0-18-amd64',
      'myhv-guest: error invalid myhv.mtu, ignored',
      'myhv-guest: readyish ip=none shares=none',
      ' myhv-guest: ready ip=none shares=none',
    ]) {
      expect(parseReadyLine(line)).toBeUndefined();
    }
  });

  it.each([
    'myhv-guest: ready',
    'myhv-guest: ready ip=10.0.0.1',
    'myhv-guest: ready shares=none',
    'myhv-guest: ready ip=10.0.0.300 shares=none',
    'myhv-guest: ready ip=none shares=a,,b',
    'myhv-guest: ready ip=none shares=',
  ])('refuses the malformed ready line %j', (line) => {
    expect(fieldOf(() => parseReadyLine(line))).toBe('line');
  });
});
