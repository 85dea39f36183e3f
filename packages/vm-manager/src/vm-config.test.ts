import { parseGuestArgs } from '@my-hypervisor/guest-image';
import type { VmNetworkAttachment } from '@my-hypervisor/net-ops';
import { describe, expect, it } from 'vitest';
import { VmManagerError } from './errors.js';
import { guestHostname, parseVmSpec } from './spec.js';
import { kernelCmdline } from './vm-config.js';

const base = { name: 'web', kernel: '/var/lib/myhv/images/default/vmlinux' };

const network: VmNetworkAttachment = {
  tap: 'myhv-t1',
  mac: '52:54:00:00:00:05',
  bridge: 'myhv0',
  ipv4: '10.62.0.5',
  gateway: '10.62.0.1',
  prefixLength: 24,
  netmask: '255.255.255.0',
  kernelIpArg: 'ip=10.62.0.5::10.62.0.1:255.255.255.0:web:eth0:off',
  created: true,
};

function fieldOf(input: unknown): string | undefined {
  try {
    parseVmSpec(input);
  } catch (error) {
    expect(VmManagerError.isInstance(error)).toBe(true);
    expect((error as VmManagerError).code).toBe('INVALID_ARGUMENT');
    return (error as VmManagerError).details.field;
  }
  return undefined;
}

describe('kernelCmdline for a VM made from an image', () => {
  it("tells our init the VM's address, gateway, DNS, hostname, mounts and command (round trip)", () => {
    const spec = parseVmSpec({
      ...base,
      image: 'default',
      command: "echo 'hi there' && cat /data/x",
      shares: [
        { hostPath: '/srv/data', tag: 'data', guestPath: '/data' },
        { hostPath: '/srv/other', tag: 'other' },
      ],
    });
    const cmdline = kernelCmdline(spec, network);
    // The spec's own arguments and the kernel's ip= stay first.
    expect(cmdline.startsWith(`console=ttyS0 reboot=k panic=1 ${network.kernelIpArg} `)).toBe(true);
    expect(parseGuestArgs(cmdline)).toEqual({
      ip: { address: '10.62.0.5', prefixLength: 24 },
      gateway: '10.62.0.1',
      dns: ['10.62.0.1'],
      hostname: 'web',
      // Only shares with a guest path are mounted by the init.
      shares: [{ tag: 'data', path: '/data' }],
      command: "echo 'hi there' && cat /data/x",
    });
  });

  it("tells it a mycelium VM's IPv6 address and the node as its IPv6 gateway", () => {
    const spec = parseVmSpec({ ...base, image: 'default', network: { mycelium: true } });
    const ipv6 = {
      address: '4a2:1b3c:4d5e:6f70::2',
      prefixLength: 64,
      gateway: '4a2:1b3c:4d5e:6f70::1',
      routes: ['400::/7'],
    };
    expect(parseGuestArgs(kernelCmdline(spec, { ...network, ipv6 }))).toMatchObject({
      ip: { address: '10.62.0.5', prefixLength: 24 },
      ip6: { address: '4a2:1b3c:4d5e:6f70::2', prefixLength: 64 },
      gateway6: '4a2:1b3c:4d5e:6f70::1',
    });
  });

  it('passes no address without a network, and nothing at all without an image', () => {
    const spec = parseVmSpec({ ...base, image: 'default', network: { enabled: false } });
    expect(parseGuestArgs(kernelCmdline(spec))).toEqual({ hostname: 'web' });

    const plain = parseVmSpec({ ...base, shares: [{ hostPath: '/srv', tag: 't', guestPath: '/mnt' }] });
    expect(kernelCmdline(plain, network)).toBe(`console=ttyS0 reboot=k panic=1 ${network.kernelIpArg}`);
  });

  it('turns any VM name into a hostname the init accepts', () => {
    for (const name of ['my_vm', 'a..b', 'x-', 'web.prod', '9lives', '_'.padStart(3, 'a')]) {
      const spec = parseVmSpec({ ...base, name, image: 'default' });
      const { hostname } = parseGuestArgs(kernelCmdline(spec, network));
      expect(hostname, name).toBe(guestHostname(name));
    }
    expect(guestHostname('my_vm')).toBe('my-vm');
    expect(guestHostname('web.prod')).toBe('web.prod');
  });
});

describe('parseVmSpec: image, command and share guest paths', () => {
  it('keeps them', () => {
    const spec = parseVmSpec({
      ...base,
      image: 'debian-12',
      command: 'true',
      shares: [{ hostPath: '/srv', tag: 't', guestPath: '/mnt/t' }],
    });
    expect(spec).toMatchObject({ image: 'debian-12', command: 'true', shares: [{ guestPath: '/mnt/t' }] });
  });

  it.each([
    ['image name with capitals', { ...base, image: 'Default' }, 'image'],
    ['image name with a slash', { ...base, image: '../x' }, 'image'],
    ['empty command', { ...base, image: 'd', command: '' }, 'command'],
    ['command with NUL', { ...base, image: 'd', command: 'a\0b' }, 'command'],
    ['command too long', { ...base, image: 'd', command: 'x'.repeat(4097) }, 'command'],
    ['command without image', { ...base, command: 'true' }, 'command'],
    ['command beyond the kernel command line', { ...base, image: 'd', command: 'x'.repeat(2000) }, 'command'],
    [
      'relative guest path',
      { ...base, shares: [{ hostPath: '/s', tag: 't', guestPath: 'mnt' }] },
      'shares[0].guestPath',
    ],
    [
      'guest path /',
      { ...base, shares: [{ hostPath: '/s', tag: 't', guestPath: '/' }] },
      'shares[0].guestPath',
    ],
    [
      'guest path not normalised',
      { ...base, shares: [{ hostPath: '/s', tag: 't', guestPath: '/mnt/../etc' }] },
      'shares[0].guestPath',
    ],
    [
      'guest path with a trailing slash',
      { ...base, shares: [{ hostPath: '/s', tag: 't', guestPath: '/mnt/' }] },
      'shares[0].guestPath',
    ],
    [
      'guest path with a space',
      { ...base, shares: [{ hostPath: '/s', tag: 't', guestPath: '/mnt/a b' }] },
      'shares[0].guestPath',
    ],
    [
      'two shares on one guest path',
      {
        ...base,
        shares: [
          { hostPath: '/s', tag: 'a', guestPath: '/mnt' },
          { hostPath: '/t', tag: 'b', guestPath: '/mnt' },
        ],
      },
      'shares[1].guestPath',
    ],
  ])('refuses %s (INVALID_ARGUMENT naming the field)', (_label, input, field) => {
    expect(fieldOf(input)).toBe(field);
  });
});
