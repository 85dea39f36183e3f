import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { vmLimits } from './confinement.js';
import { VmManagerError } from './errors.js';
import {
  MANAGED_VMM_OPTIONS,
  networkPolicy,
  parseForwardSpec,
  parseMemorySize,
  parseVmSpec,
  vmSpecSchema,
} from './spec.js';

const base = { name: 'web', kernel: '/boot/vmlinux' };

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

describe('parseVmSpec', () => {
  it('fills defaults that boot a minimal guest', () => {
    const spec = parseVmSpec(base);
    expect(spec).toMatchObject({
      name: 'web',
      cpus: 1,
      memory: 512 * 1024 * 1024,
      cmdline: 'console=ttyS0 reboot=k panic=1',
      disks: [],
      shares: [],
      network: { enabled: true, queues: 1, forwards: [], mycelium: false },
      vmm: { extraArgs: [] },
    });
  });

  it('accepts sizes in the forms people write', () => {
    expect(parseMemorySize('1G')).toBe(1024 ** 3);
    expect(parseMemorySize('1GiB')).toBe(1024 ** 3);
    expect(parseMemorySize('256m')).toBe(256 * 1024 ** 2);
    expect(parseMemorySize(1024)).toBe(1024 ** 3);
    expect(parseMemorySize('lots')).toBeUndefined();
    expect(parseMemorySize(-1)).toBeUndefined();
    expect(parseVmSpec({ ...base, memory: '2G' }).memory).toBe(2 * 1024 ** 3);
  });

  it.each([
    ['hostile name (newline)', { ...base, name: 'a\nb' }, 'name'],
    ['hostile name (slash)', { ...base, name: '../etc' }, 'name'],
    ['hostile name (space)', { ...base, name: 'a b' }, 'name'],
    ['hostile name (semicolon)', { ...base, name: 'a;rm' }, 'name'],
    ['empty name', { ...base, name: '' }, 'name'],
    ['name too long', { ...base, name: 'a'.repeat(64) }, 'name'],
    ['zero memory', { ...base, memory: 0 }, 'memory'],
    ['memory lots', { ...base, memory: 'lots' }, 'memory'],
    ['memory too small', { ...base, memory: '1M' }, 'memory'],
    ['zero cpus', { ...base, cpus: 0 }, 'cpus'],
    ['fractional cpus', { ...base, cpus: 1.5 }, 'cpus'],
    ['missing kernel', { name: 'web' }, 'kernel'],
    ['relative kernel', { ...base, kernel: 'vmlinux' }, 'kernel'],
    ['kernel with comma', { ...base, kernel: '/a,b' }, 'kernel'],
    ['unknown top-level field', { ...base, colour: 'red' }, 'spec'],
    ['zero cpu limit', { ...base, limits: { cpus: 0 } }, 'limits.cpus'],
    ['memory limit lots', { ...base, limits: { memory: 'lots' } }, 'limits.memory'],
    [
      'memory limit below the guest',
      { ...base, memory: '512M', limits: { memory: '512M' } },
      'limits.memory',
    ],
    [
      'memory limit below guest + hot-plug',
      { ...base, memory: '256M', memoryHotplug: '256M', limits: { memory: '384M' } },
      'limits.memory',
    ],
    ['too few pids', { ...base, limits: { pids: 8 } }, 'limits.pids'],
    ['unknown limit', { ...base, limits: { disk: 1 } }, 'limits'],
    ['wrong type', { ...base, cpus: '2' }, 'cpus'],
    [
      'port 0',
      { ...base, network: { forwards: [{ hostPort: 0, guestPort: 80 }] } },
      'network.forwards[0].hostPort',
    ],
    [
      'port 70000',
      { ...base, network: { forwards: [{ hostPort: 8080, guestPort: 70000 }] } },
      'network.forwards[0].guestPort',
    ],
    [
      'duplicate host ports',
      {
        ...base,
        network: {
          forwards: [
            { hostPort: 8080, guestPort: 80 },
            { hostPort: 8080, guestPort: 81 },
          ],
        },
      },
      'network.forwards[1].hostPort',
    ],
    [
      'bad protocol',
      { ...base, network: { forwards: [{ protocol: 'icmp', hostPort: 1, guestPort: 1 }] } },
      'network.forwards[0].protocol',
    ],
    [
      'bad hostIp',
      { ...base, network: { forwards: [{ hostPort: 1, guestPort: 1, hostIp: '1.2.3' }] } },
      'network.forwards[0].hostIp',
    ],
    ['share tag too long', { ...base, shares: [{ hostPath: '/srv', tag: 'x'.repeat(37) }] }, 'shares[0].tag'],
    ['share tag hostile', { ...base, shares: [{ hostPath: '/srv', tag: 'a b' }] }, 'shares[0].tag'],
    [
      'duplicate share tags',
      {
        ...base,
        shares: [
          { hostPath: '/a', tag: 't' },
          { hostPath: '/b', tag: 't' },
        ],
      },
      'shares[1].tag',
    ],
    ['relative share path', { ...base, shares: [{ hostPath: 'srv', tag: 't' }] }, 'shares[0].hostPath'],
    [
      'forwards without network',
      { ...base, network: { enabled: false, forwards: [{ hostPort: 1, guestPort: 1 }] } },
      'network.enabled',
    ],
    [
      'isolation without network',
      { ...base, network: { enabled: false, isolation: 'vm' } },
      'network.isolation',
    ],
    [
      'egress without network',
      { ...base, network: { enabled: false, egress: 'deny-all' } },
      'network.egress',
    ],
    ['unknown isolation', { ...base, network: { isolation: 'host' } }, 'network.isolation'],
    ['unknown egress', { ...base, network: { egress: 'some' } }, 'network.egress'],
    [
      'egress rule with a bad CIDR',
      { ...base, network: { egress: [{ cidr: '10.0.0.0/8' }, { cidr: '10.0.0/8' }] } },
      'network.egress[1].cidr',
    ],
    [
      'egress rule with an unknown field',
      { ...base, network: { egress: [{ cidr: '10.0.0.0/8', port: 53 }] } },
      'network.egress[0]',
    ],
    [
      'egress rule with ICMP ports',
      { ...base, network: { egress: [{ cidr: '10.0.0.0/8', proto: 'icmp', ports: [1] }] } },
      'network.egress[0].ports',
    ],
    ['cmdline with newline', { ...base, cmdline: 'a\nb' }, 'cmdline'],
    ['more queue pairs than vCPUs', { ...base, cpus: 1, network: { queues: 2 } }, 'network.queues'],
    ['more queue pairs than vCPUs (4 > 2)', { ...base, cpus: 2, network: { queues: 4 } }, 'network.queues'],
    ['memory 1e300 (MiB, from a spec file)', { ...base, memory: 1e300 }, 'memory'],
    ['memory 99999999T', { ...base, memory: '99999999T' }, 'memory'],
    ['memory over 64T', { ...base, memory: '65T' }, 'memory'],
    [
      'the same disk twice',
      {
        ...base,
        disks: [{ path: '/img/a.raw' }, { path: '/img/b.raw' }, { path: '/img/a.raw', readOnly: true }],
      },
      'disks[2].path',
    ],
    [
      'the same disk twice, spelt differently',
      { ...base, disks: [{ path: '/img/a.raw' }, { path: '/img/./a.raw' }] },
      'disks[1].path',
    ],
    [
      '--api-socket in extraArgs',
      { ...base, vmm: { extraArgs: ['-v', '--api-socket=/tmp/x.sock'] } },
      'vmm.extraArgs[1]',
    ],
    [
      '--api-socket as two extraArgs',
      { ...base, vmm: { extraArgs: ['--api-socket', '/tmp/x.sock'] } },
      'vmm.extraArgs[0]',
    ],
    [
      '--kernel in extraArgs',
      { ...base, vmm: { extraArgs: ['--kernel', '/boot/other'] } },
      'vmm.extraArgs[0]',
    ],
    ['--memory= in extraArgs', { ...base, vmm: { extraArgs: ['--memory=size=1G'] } }, 'vmm.extraArgs[0]'],
    [
      '--restore in extraArgs',
      { ...base, vmm: { extraArgs: ['--restore', 'source_url=file:///x'] } },
      'vmm.extraArgs[0]',
    ],
  ])('rejects %s naming the field', (_title, input, field) => {
    expect(fieldOf(input)).toBe(field);
  });

  it('allows as many queue pairs as vCPUs, and says what Cloud Hypervisor would refuse', () => {
    expect(parseVmSpec({ ...base, cpus: 4, network: { queues: 4 } }).network.queues).toBe(4);
    expect(() => parseVmSpec({ ...base, cpus: 1, network: { queues: 2 } })).toThrow(
      'network.queues: 2 queue pairs need at least as many vCPUs, but cpus is 1',
    );
    // No network device, no queues to check.
    expect(parseVmSpec({ ...base, network: { enabled: false, queues: 2 } }).network.enabled).toBe(false);
  });

  it('refuses every option the manager sets, in extraArgs, and allows the rest', () => {
    for (const option of MANAGED_VMM_OPTIONS) {
      for (const arg of [option, `${option}=x`, ` ${option} x`]) {
        expect(fieldOf({ ...base, vmm: { extraArgs: [arg] } }), arg).toBe('vmm.extraArgs[0]');
      }
    }
    const extraArgs = ['-v', '--seccomp=log', '--landlock', '--api-socketx', '--kernels'];
    expect(parseVmSpec({ ...base, vmm: { extraArgs } }).vmm.extraArgs).toEqual(extraArgs);
  });

  it('says a huge memory size is too large, not that it is no size', () => {
    expect(() => parseVmSpec({ ...base, memory: '99999999T' })).toThrow(/more than any host has/);
    expect(() => parseVmSpec({ ...base, memory: 1e300 })).toThrow(/more than any host has/);
    expect(parseMemorySize(1e300)).toBeUndefined();
    expect(parseVmSpec({ ...base, memory: '64T' }).memory).toBe(64 * 1024 ** 4);
  });

  it('allows distinct disks, read-only or not', () => {
    const disks = [{ path: '/img/a.raw' }, { path: '/img/b.raw', readOnly: true }];
    expect(parseVmSpec({ ...base, disks }).disks).toHaveLength(2);
  });

  it('keeps a network policy as written and leaves an unset one to the backend', () => {
    const egress = [{ cidr: '192.0.2.0/24', ports: [443], proto: 'tcp' as const }, { cidr: '10.0.0.0/8' }];
    const spec = parseVmSpec({ ...base, network: { isolation: 'vm', egress } });
    expect(spec.network).toMatchObject({ isolation: 'vm', egress });
    expect(networkPolicy(spec)).toEqual({ isolation: 'vm', egress });
    expect(networkPolicy(parseVmSpec({ ...base, network: { egress: 'deny-all' } }))).toEqual({
      egress: 'deny-all',
    });
    const open = parseVmSpec(base);
    expect(open.network).not.toHaveProperty('isolation');
    expect(open.network).not.toHaveProperty('egress');
    expect(networkPolicy(open)).toBeUndefined();
    // No network, no policy: the open one may still be written out.
    expect(parseVmSpec({ ...base, network: { enabled: false } }).network.enabled).toBe(false);
  });

  it('keeps labels as written, and a spec without them has no labels key', () => {
    const labels = {
      app: 'web',
      'myhv.cluster': 'prod-1',
      'example.com/tier': 'Front_End.v2',
      empty: '',
      [`k${'x'.repeat(61)}z`]: `V${'x'.repeat(61)}9`,
    };
    const spec = parseVmSpec({ ...base, labels });
    expect(spec.labels).toEqual(labels);
    expect(JSON.parse(JSON.stringify(spec)).labels).toEqual(labels);
    expect(parseVmSpec({ ...base, labels: {} }).labels).toEqual({});
    const many = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`, 'v']));
    expect(Object.keys(parseVmSpec({ ...base, labels: many }).labels ?? {})).toHaveLength(32);
    // Records written before labels existed must serialise exactly as before.
    const plain = parseVmSpec(base);
    expect(plain).not.toHaveProperty('labels');
    expect(JSON.stringify(plain)).not.toContain('labels');
  });

  it.each([
    ['an uppercase key', { App: 'web' }, 'labels', 'key "App" must start and end with a lowercase letter'],
    ['a key of 64 characters', { ['k'.repeat(64)]: 'v' }, 'labels', 'must be at most 63 characters'],
    ['a key starting with -', { '-app': 'web' }, 'labels', 'key "-app" must start and end'],
    ['a key ending with /', { 'example.com/': 'v' }, 'labels', 'key "example.com/" must start and end'],
    ['an empty key', { '': 'v' }, 'labels', 'key "" must not be empty'],
    ['a key with a newline', { 'a\nb': 'v' }, 'labels', 'key "a\\nb" must start'],
    [
      'a value with a space',
      { app: 'my web' },
      'labels.app',
      'must be empty, or start and end with a letter',
    ],
    ['a value ending with -', { 'myhv.cluster': 'prod-' }, 'labels.myhv.cluster', 'must be empty, or start'],
    ['a value of 64 characters', { app: 'v'.repeat(64) }, 'labels.app', 'must be at most 63 characters'],
    ['a value that is no string', { replicas: 3 }, 'labels.replicas', 'expected string'],
    [
      '33 labels',
      Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])),
      'labels',
      'must have at most 32 entries',
    ],
    ['a list', ['app=web'], 'labels', 'expected record'],
  ])('refuses %s, naming the field and the problem', (_title, labels, field, message) => {
    expect(fieldOf({ ...base, labels })).toBe(field);
    expect(() => parseVmSpec({ ...base, labels })).toThrow(`${field}: `);
    expect(() => parseVmSpec({ ...base, labels })).toThrow(message);
  });

  it('names a hostile key in the message, escaped and cut short, never in the field', () => {
    const key = `\u001b[2J${'A'.repeat(5000)}`;
    const error = (() => {
      try {
        parseVmSpec({ ...base, labels: { [key]: 'v' } });
      } catch (e) {
        return e as VmManagerError;
      }
    })();
    expect(error?.details.field).toBe('labels');
    expect(error?.message).not.toContain('\u001b');
    expect(error?.message).toContain('key "\\u001b[2JAAA');
    expect(error?.message.length).toBeLessThan(300);
  });

  it('parses a single forward with its own field names', () => {
    expect(parseForwardSpec({ hostPort: 8080, guestPort: 80 })).toEqual({
      protocol: 'tcp',
      hostPort: 8080,
      guestPort: 80,
    });
    expect(() => parseForwardSpec({ hostPort: 8080 })).toThrow(/guestPort/);
  });
});

// The schemas are built on first use; the exported schema must behave like the zod object it stands for.
describe('vmSpecSchema', () => {
  it('is a zod object schema with its shape, parse methods and JSON Schema', () => {
    expect(vmSpecSchema).toBeInstanceOf(z.ZodObject);
    expect(Object.keys(vmSpecSchema.shape)).toContain('memory');
    expect(vmSpecSchema.shape.name.safeParse('web').success).toBe(true);
    expect(vmSpecSchema.shape.name.safeParse('-web').success).toBe(false);
    expect(vmSpecSchema.parse(base)).toEqual(parseVmSpec(base));
    expect(vmSpecSchema.safeParse({ ...base, cpus: 0 }).success).toBe(false);
    const json = z.toJSONSchema(vmSpecSchema, { io: 'input', unrepresentable: 'any' }) as {
      required?: string[];
      properties?: Record<string, unknown>;
    };
    expect(json.required).toEqual(['name', 'kernel']);
    expect(Object.keys(json.properties ?? {})).toContain('network');
    expect(z.array(vmSpecSchema).parse([base])).toHaveLength(1);
  });
});

describe('vmLimits', () => {
  const base = { name: 'web', kernel: '/boot/vmlinux' };
  it("defaults from the VM's size: one CPU above its most vCPUs, its memory plus 256 MiB, 512 pids", () => {
    const MiB = 1024 * 1024;
    expect(vmLimits(parseVmSpec({ ...base, cpus: 2, memory: '1G' }))).toEqual({
      cpus: 3,
      memoryBytes: 1024 * MiB + 256 * MiB,
      pids: 512,
    });
    expect(vmLimits(parseVmSpec({ ...base, cpusMax: 4, memory: '256M', memoryHotplug: '256M' }))).toEqual({
      cpus: 5,
      memoryBytes: 768 * MiB,
      pids: 512,
    });
    expect(vmLimits(parseVmSpec({ ...base, limits: { cpus: 0.5, memory: '2G', pids: 64 } }))).toEqual({
      cpus: 0.5,
      memoryBytes: 2048 * MiB,
      pids: 64,
    });
  });
});
