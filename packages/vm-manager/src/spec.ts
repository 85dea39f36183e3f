import { posix } from 'node:path';
import { GuestImageError, validateGuestArgs } from '@my-hypervisor/guest-image/core';
import {
  isIPv4,
  NetOpsError,
  networkPolicySchema,
  parseNetworkPolicy,
  type VmNetworkPolicy,
} from '@my-hypervisor/net-ops';
import { z } from 'zod';
import { invalidSpec } from './errors.js';

/** What x86 Linux keeps of its command line (COMMAND_LINE_SIZE); the rest is cut off silently. */
export const KERNEL_CMDLINE_MAX = 2048;
/** Room left on the command line for what the manager adds at boot (`ip=…`, `myhv.ip=…`, gateway, DNS, IPv6). */
const NETWORK_ARGS_RESERVE = 320;
/** A guest path segment the guest init accepts (guest-args.ts checks the same in `formatGuestArgs`). */
const GUEST_PATH_SEGMENT = /^[A-Za-z0-9_.@+=,-]+$/;

const MiB = 1024 * 1024;
const units: Record<string, number> = { '': MiB, k: 1024, m: MiB, g: 1024 * MiB, t: 1024 * 1024 * MiB };

/** The bytes a size stands for, unchecked (may be 0 or beyond a safe integer); undefined when it is no size. */
function sizeBytes(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value * MiB : undefined;
  const match = /^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$/i.exec(value);
  return match ? Number(match[1]) * units[match[2]!.toLowerCase()]! : undefined;
}

/** `512M`, `1G`, `2GiB`, `1536` (MiB): bytes. Undefined when it is not a size (or not a safe integer of bytes). */
export function parseMemorySize(value: string | number): number | undefined {
  // `1e300` is an integer to JavaScript, but no number of bytes.
  const bytes = sizeBytes(value);
  return bytes !== undefined && Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

/** Most labels a VM spec may carry. */
const MAX_LABELS = 32;

/** The smallest guest Cloud Hypervisor boots a minimal kernel in without trouble. */
export const MIN_MEMORY_BYTES = 64 * MiB;
/** Cloud Hypervisor hot-plugs memory (ACPI) in multiples of this; a 64M hotplug_size fails with "not a valid size". */
export const HOTPLUG_STEP_BYTES = 128 * MiB;
/** More than any x86-64 host addresses (46 physical address bits); the host's own RAM is checked later. */
export const MAX_MEMORY_BYTES = 64 * 1024 * 1024 * MiB;

/**
 * Cloud Hypervisor options the manager sets itself (on the command line or in `vm.create`): set again in
 * `vmm.extraArgs` they would make a second VM, or move the API socket where the manager never looks.
 */
export const MANAGED_VMM_OPTIONS: readonly string[] = [
  '--api-socket',
  '--kernel',
  '--firmware',
  '--initramfs',
  '--cmdline',
  '--net',
  '--fs',
  '--disk',
  '--serial',
  '--console',
  '--event-monitor',
  '--log-file',
  '--cpus',
  '--memory',
  '--restore',
];

/** The managed option `arg` sets (`--api-socket`, `--api-socket=/x`, `--api-socket /x`), or undefined. */
export function managedVmmOption(arg: string): string | undefined {
  const name = /^\s*(--[^=\s]+)/.exec(arg)?.[1];
  return name !== undefined && MANAGED_VMM_OPTIONS.includes(name) ? name : undefined;
}

/**
 * Builds the schemas. Deferred until first use: constructing them takes milliseconds that commands which never
 * parse a spec (`myhv vm ls` runs in loops in scripts) should not pay at start-up.
 */
function buildSchemas() {
  const vmName = z
    .string()
    .min(1, 'must not be empty')
    .max(63, 'must be at most 63 characters')
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9_.-]*$/,
      "must start with a letter or digit and contain only letters, digits, '_', '.', '-'",
    );

  const absolutePath = z
    .string()
    .min(1, 'must not be empty')
    .max(4096)
    .refine((p) => p.startsWith('/'), 'must be an absolute path')
    .refine(
      (p) => !p.includes('\0') && !p.includes('\n') && !p.includes(','),
      'must not contain NUL, newline or comma',
    );

  const port = z.number().int('must be an integer').min(1, 'must be 1–65535').max(65535, 'must be 1–65535');

  const forward = z.strictObject({
    protocol: z.enum(['tcp', 'udp']).default('tcp'),
    hostPort: port,
    guestPort: port,
    hostIp: z.string().refine(isIPv4, 'must be an IPv4 address').optional(),
  });

  const share = z.strictObject({
    hostPath: absolutePath,
    tag: z
      .string()
      .min(1, 'must not be empty')
      .max(36, 'must be at most 36 bytes')
      .regex(/^[A-Za-z0-9_.-]+$/, "may only contain letters, digits, '_', '.', '-'"),
    readOnly: z.boolean().default(false),
    /** Where a guest running our init (`image`) mounts the share; absolute and normalised. */
    guestPath: z
      .string()
      .max(255, 'must be at most 255 bytes')
      .refine(
        (p) =>
          p.startsWith('/') &&
          p !== '/' &&
          p
            .slice(1)
            .split('/')
            .every((s) => s !== '.' && s !== '..' && GUEST_PATH_SEGMENT.test(s)),
        "must be an absolute, normalised path (no '.', '..', '//' or trailing '/') of letters, digits and _ . @ + = , -",
      )
      .optional(),
  });

  const disk = z.strictObject({
    path: absolutePath,
    readOnly: z.boolean().default(false),
  });

  /** One more network interface on the VM's network (`nics.ts`): its own TAP and address. */
  const nic = z.strictObject({
    /** Its device id in the VMM and in `myhv vm nic rm`: `nic1` … `nic8`. */
    id: z.string().regex(/^nic[1-8]$/, 'must be nic1 … nic8'),
    /** A unicast MAC; derived from the VM and the id when omitted. */
    mac: z
      .string()
      .regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i, 'must be a MAC address such as 52:54:00:12:34:56')
      .refine((mac) => (Number.parseInt(mac.slice(0, 2), 16) & 1) === 0, 'must be a unicast address')
      .transform((mac) => mac.toLowerCase())
      .optional(),
  });

  const labels = z
    .record(
      z
        .string()
        .min(1, 'must not be empty')
        .max(63, 'must be at most 63 characters')
        .regex(
          /^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$/,
          "must start and end with a lowercase letter or digit, with only lowercase letters, digits, '.', '_', '/', '-' between",
        ),
      z
        .string()
        .max(63, 'must be at most 63 characters')
        .regex(
          /^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/,
          "must be empty, or start and end with a letter or digit, with only letters, digits, '.', '_', '-' between",
        ),
    )
    .refine((entries) => Object.keys(entries).length <= MAX_LABELS, `must have at most ${MAX_LABELS} entries`)
    // zod has no size check for a record: its JSON Schema (OpenRPC, docs/cli.md) states the count itself.
    .meta({ maxProperties: MAX_LABELS })
    // Only to type the output read-only: `.readonly()` would mark the field readOnly in the JSON Schema.
    .transform((entries): Readonly<Record<string, string>> => entries);

  const vmSpec = z.strictObject({
    name: vmName,
    /**
     * Free-form key/value tags (`app: web`, `team: infra`) for tools to find and mark VMs by; the manager only
     * keeps them. Cluster mode marks the VMs it manages with `myhv.cluster`.
     */
    labels: labels.optional(),
    /** Boot vCPUs. */
    cpus: z
      .number()
      .int('must be an integer')
      .min(1, 'must be at least 1')
      .max(254, 'must be at most 254')
      .default(1),
    /** Most vCPUs `vm resize` may grow to (the VMM's `cpus.max_vcpus`); `cpus` when omitted. */
    cpusMax: z
      .number()
      .int('must be an integer')
      .min(1, 'must be at least 1')
      .max(254, 'must be at most 254')
      .optional(),
    /** Memory `vm resize` may add on top of `memory` (ACPI hot-plug, 128 MiB steps); none when omitted. */
    memoryHotplug: z
      .union([z.string(), z.number()])
      .optional()
      .transform((value, ctx) => {
        if (value === undefined) return undefined;
        const bytes = sizeBytes(value);
        if (bytes === undefined || !Number.isSafeInteger(bytes) || bytes > MAX_MEMORY_BYTES) {
          ctx.addIssue({
            code: 'custom',
            message: `${JSON.stringify(value)} is not a size such as 512M or 2G`,
          });
          return z.NEVER;
        }
        if (bytes % HOTPLUG_STEP_BYTES !== 0) {
          ctx.addIssue({ code: 'custom', message: 'must be a multiple of 128M (the hot-plug step)' });
          return z.NEVER;
        }
        return bytes;
      }),
    /** Guest memory: a size such as `512M` or `1G`, or a number of MiB. */
    memory: z
      .union([z.string(), z.number()])
      .default('512M')
      .transform((value, ctx) => {
        const raw = sizeBytes(value);
        if (raw !== undefined && raw > MAX_MEMORY_BYTES) {
          ctx.addIssue({
            code: 'custom',
            message: `${JSON.stringify(value)} is more than any host has (at most 64T)`,
          });
          return z.NEVER;
        }
        const bytes = parseMemorySize(value);
        if (bytes === undefined) {
          ctx.addIssue({
            code: 'custom',
            message: `${JSON.stringify(value)} is not a size such as 512M or 2G`,
          });
          return z.NEVER;
        }
        if (bytes < MIN_MEMORY_BYTES || bytes % MiB !== 0) {
          ctx.addIssue({ code: 'custom', message: 'must be a whole number of MiB, at least 64M' });
          return z.NEVER;
        }
        return bytes;
      }),
    /** Kernel image for direct boot (vmlinux or bzImage). */
    kernel: absolutePath,
    initramfs: absolutePath.optional(),
    /**
     * The image (`myhv image build`) the kernel and initramfs came from: the guest runs our init, so the manager
     * passes it the network, shares and command as `myhv.*` kernel arguments.
     */
    image: z
      .string()
      .regex(
        /^[a-z][a-z0-9-]{0,31}$/,
        "must be an image name: 1–32 lowercase letters, digits and '-', starting with a letter",
      )
      .optional(),
    /** What our init runs with `sh -c` (needs `image`); without it the guest starts a shell on the console. */
    command: z
      .string()
      .min(1, 'must not be empty')
      .max(4096, 'must be at most 4096 characters')
      .refine((c) => !c.includes('\0'), 'must not contain NUL')
      .refine((c) => Buffer.from(c, 'utf8').toString('utf8') === c, 'must be well-formed text')
      .optional(),
    /** Kernel command line; the VM's `ip=` argument is appended. */
    cmdline: z
      .string()
      .max(2048)
      .refine((c) => !/[\0\n]/.test(c), 'must not contain NUL or newline')
      .default('console=ttyS0 reboot=k panic=1'),
    disks: z.array(disk).max(16).default([]),
    /** More interfaces on the VM's network, besides its first (which `network` describes). */
    nics: z.array(nic).max(8).optional(),
    shares: z.array(share).max(16).default([]),
    network: z
      .strictObject({
        /** Attach the VM to the manager's network (a TAP on its bridge). */
        enabled: z.boolean().default(true),
        /** The network to join (`myhv net create`); the default network when omitted. */
        name: z
          .string()
          .regex(
            /^[a-z][a-z0-9-]{0,14}$/,
            "must be a network name: 1–15 lowercase letters, digits and '-', starting with a letter",
          )
          .optional(),
        /** The bridge the caller expects; must match the manager's. */
        bridge: z.string().optional(),
        /** Queue pairs; more than 1 needs a multi-queue TAP, and at most `cpus`. */
        queues: z.number().int().min(1).max(16).default(1),
        forwards: z.array(forward).max(64).default([]),
        /** Give the VM a mycelium IPv6 (the manager's network must be a MyceliumNetwork). */
        mycelium: z.boolean().default(false),
        /**
         * `vm`: no other VM's address, no host address but the gateway; `none`: plain bridge. Omitted: the
         * backend's default (`vm` where it enforces policy). Anything but the open policy needs such a backend.
         */
        isolation: networkPolicySchema.shape.isolation,
        /** `allow-all` (when omitted), `deny-all`, or the `{ cidr, ports?, proto? }` destinations allowed. */
        egress: networkPolicySchema.shape.egress,
      })
      .default({ enabled: true, queues: 1, forwards: [], mycelium: false }),
    /**
     * Host resources the VM's processes (its VMM and virtiofsd) may use, enforced by its cgroup where the manager
     * confines VMMs. Each omitted one defaults from the VM's size (`vmLimits`).
     */
    limits: z
      .strictObject({
        /** CPU time, in CPUs (`1.5`: one and a half CPUs' worth per period). */
        cpus: z.number().min(0.01, 'must be at least 0.01').max(1024, 'must be at most 1024').optional(),
        /** Memory of the VMM and virtiofsd together: the guest's memory plus theirs, e.g. `1G`. */
        memory: z
          .union([z.string(), z.number()])
          .optional()
          .transform((value, ctx) => {
            if (value === undefined) return undefined;
            const bytes = parseMemorySize(value);
            if (bytes === undefined || bytes > MAX_MEMORY_BYTES) {
              ctx.addIssue({
                code: 'custom',
                message: `${JSON.stringify(value)} is not a size such as 768M or 2G`,
              });
              return z.NEVER;
            }
            return bytes;
          }),
        /** Processes and threads. */
        pids: z.number().int('must be an integer').min(16, 'must be at least 16').max(4_194_304).optional(),
      })
      .optional(),
    /**
     * Like docker's restart policy: `on-boot` VMs are started again by `myhv autostart` after a host reboot;
     * `always` ones also, and by myhvd whenever their VMM dies.
     */
    restart: z.enum(['no', 'on-boot', 'always']).default('no'),
    vmm: z
      .strictObject({
        /** cloud-hypervisor binary for this VM; the manager's default when omitted. */
        binary: absolutePath.optional(),
        /** Extra arguments for the VMM, for version-specific flags. */
        extraArgs: z.array(z.string().max(4096)).max(32).default([]),
      })
      .default({ extraArgs: [] }),
  });
  return { vmSpec, forward };
}

type Schemas = ReturnType<typeof buildSchemas>;
let built: Schemas | undefined;
const schemas = (): Schemas => (built ??= buildSchemas());

/**
 * An object that stands for `build()`'s result and builds it on first use: every operation (property reads,
 * `in`, key listing, `instanceof`) is forwarded to the real object.
 */
function lazyObject<T extends object>(build: () => T): T {
  const real = (): T => build();
  return new Proxy({} as T, {
    get: (_target, key) => Reflect.get(real(), key),
    set: (_target, key, value) => Reflect.set(real(), key, value),
    has: (_target, key) => Reflect.has(real(), key),
    ownKeys: () => Reflect.ownKeys(real()),
    getOwnPropertyDescriptor: (_target, key) => {
      const descriptor = Reflect.getOwnPropertyDescriptor(real(), key);
      // The proxy's own target lacks the property, so it may only be reported as configurable.
      return descriptor && { ...descriptor, configurable: true };
    },
    defineProperty: (_target, key, descriptor) => Reflect.defineProperty(real(), key, descriptor),
    deleteProperty: (_target, key) => Reflect.deleteProperty(real(), key),
    getPrototypeOf: () => Reflect.getPrototypeOf(real()),
  });
}

/** The single source of truth for a VM's description, used by the library and the CLI (flags and spec files). */
export const vmSpecSchema: Schemas['vmSpec'] = lazyObject(() => schemas().vmSpec);

/** A VM spec as written by a user (defaults optional). */
export type VmSpecInput = z.input<typeof vmSpecSchema>;
/** A parsed VM spec: defaults filled, memory in bytes. */
export type VmSpec = z.output<typeof vmSpecSchema>;
/** One parsed port forward of a VM spec. */
export type ForwardSpec = VmSpec['network']['forwards'][number];
/** One extra network interface of a parsed VM spec. */
export type NicSpec = NonNullable<VmSpec['nics']>[number];
/** One shared folder of a parsed VM spec. */
export type ShareSpecInput = VmSpec['shares'][number];

/** Parses one port forward (`{ protocol?, hostPort, guestPort, hostIp? }`); errors name the field. */
export function parseForwardSpec(input: unknown): ForwardSpec {
  const result = schemas().forward.safeParse(input);
  if (result.success) return result.data;
  throw issueError(result.error);
}

function issueError(error: z.ZodError): Error {
  const issue = error.issues[0]!;
  if (issue.code === 'invalid_key') {
    // A bad key is input, not a field name: it is quoted (and cut short) in the message, the field is its record.
    const key = String(issue.path.at(-1));
    const quoted = JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key);
    const reason = issue.issues[0]?.message ?? 'is not allowed';
    return invalidSpec(formatPath(issue.path.slice(0, -1)), `key ${quoted} ${reason}`, error);
  }
  const message =
    issue.code === 'unrecognized_keys'
      ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`
      : issue.message;
  return invalidSpec(formatPath(issue.path), message, error);
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : `${out ? '.' : ''}${String(part)}`;
  return out || 'spec';
}

/**
 * Parses an untrusted spec (from flags, YAML or JSON). Throws INVALID_ARGUMENT naming the first bad field
 * (`memory`, `network.forwards[1].hostPort`, …). Checks across fields too: duplicate host ports and tags, and
 * no more network queue pairs than vCPUs.
 */
export function parseVmSpec(input: unknown): VmSpec {
  const result = schemas().vmSpec.safeParse(input);
  if (!result.success) throw issueError(result.error);
  const spec = result.data;
  const ports = new Map<string, number>();
  spec.network.forwards.forEach((f, i) => {
    const key = `${f.protocol}/${f.hostPort}`;
    const first = ports.get(key);
    if (first !== undefined) {
      throw invalidSpec(
        `network.forwards[${i}].hostPort`,
        `${key} is already forwarded by network.forwards[${first}]`,
      );
    }
    ports.set(key, i);
  });
  const disks = new Map<string, number>();
  spec.disks.forEach((d, i) => {
    // Two disk devices on one file corrupt it; `/a//b` and `/a/./b` are the same file as `/a/b`.
    const path = posix.normalize(d.path);
    const first = disks.get(path);
    if (first !== undefined) throw invalidSpec(`disks[${i}].path`, `${d.path} is already disks[${first}]`);
    disks.set(path, i);
  });
  spec.vmm.extraArgs.forEach((arg, i) => {
    const option = managedVmmOption(arg);
    if (option !== undefined) {
      throw invalidSpec(
        `vmm.extraArgs[${i}]`,
        `${option} is set by the manager; extra VMM arguments may not set it`,
      );
    }
  });
  const nics = new Map<string, number>();
  spec.nics?.forEach((n, i) => {
    if (!spec.network.enabled) throw invalidSpec(`nics[${i}]`, 'a VM without a network has no NICs');
    const first = nics.get(n.id);
    if (first !== undefined) throw invalidSpec(`nics[${i}].id`, `${n.id} is already nics[${first}]`);
    nics.set(n.id, i);
    const same = n.mac === undefined ? -1 : spec.nics!.findIndex((m) => m.mac === n.mac);
    if (same >= 0 && same < i) throw invalidSpec(`nics[${i}].mac`, `${n.mac} is already nics[${same}]'s`);
  });
  const tags = new Map<string, number>();
  spec.shares.forEach((s, i) => {
    const first = tags.get(s.tag);
    if (first !== undefined)
      throw invalidSpec(`shares[${i}].tag`, `${s.tag} is already used by shares[${first}]`);
    tags.set(s.tag, i);
  });
  const guestPaths = new Map<string, number>();
  spec.shares.forEach((s, i) => {
    if (s.guestPath === undefined) return;
    const first = guestPaths.get(s.guestPath);
    if (first !== undefined) {
      throw invalidSpec(`shares[${i}].guestPath`, `${s.guestPath} is already used by shares[${first}]`);
    }
    guestPaths.set(s.guestPath, i);
  });
  if (spec.command !== undefined && spec.image === undefined) {
    throw invalidSpec('command', 'needs image: only the init of a myhv image runs it');
  }
  assertGuestArgs(spec);
  if (!spec.network.enabled && (spec.network.forwards.length > 0 || spec.network.mycelium)) {
    throw invalidSpec('network.enabled', 'forwards and mycelium need the network enabled');
  }
  for (const field of ['isolation', 'egress'] as const) {
    if (!spec.network.enabled && spec.network[field] !== undefined)
      throw invalidSpec(`network.${field}`, 'a network policy needs the network enabled');
  }
  assertPolicyRules(spec);
  const guestBytes = spec.memory + (spec.memoryHotplug ?? 0);
  if (spec.limits?.memory !== undefined && spec.limits.memory <= guestBytes) {
    throw invalidSpec(
      'limits.memory',
      `must be more than the guest's memory (${guestBytes / MiB} MiB with hot-plug): the VMM holds it, and needs its own`,
    );
  }
  if (spec.cpusMax !== undefined && spec.cpusMax < spec.cpus) {
    throw invalidSpec('cpusMax', `must be at least cpus (${spec.cpus})`);
  }
  // Cloud Hypervisor refuses more queue pairs than boot vCPUs, but only at vm.boot (after the network is set up).
  if (spec.network.enabled && spec.network.queues > spec.cpus) {
    throw invalidSpec(
      'network.queues',
      `${spec.network.queues} queue pairs need at least as many vCPUs, but cpus is ${spec.cpus}`,
    );
  }
  return spec;
}

/** The hostname a guest running our init gets: the VM name, made a valid hostname. */
export function guestHostname(name: string): string {
  // VM names may hold '_' and empty or '-'-edged labels; a hostname may not.
  const labels = name.split('.').map((l) => l.replace(/[^A-Za-z0-9-]/g, '-').replace(/^-+|-+$/g, ''));
  const hostname = labels
    .filter(Boolean)
    .join('.')
    .slice(0, 63)
    .replace(/[.-]+$/, '');
  return hostname || 'myhv-guest';
}

/**
 * For a VM made from an image: refuses what our init would refuse (guest-args.ts decides, the spec field is named)
 * and a kernel command line that the guest would cut off (naming `command`, else `cmdline`), before any work.
 */
function assertGuestArgs(spec: VmSpec): void {
  if (spec.image === undefined) return;
  const mounted = spec.shares.flatMap((s, i) => (s.guestPath ? [{ tag: s.tag, path: s.guestPath, i }] : []));
  try {
    validateGuestArgs({
      hostname: guestHostname(spec.name),
      shares: mounted.map(({ tag, path }) => ({ tag, path })),
      ...(spec.command !== undefined ? { command: spec.command } : {}),
    });
  } catch (error) {
    if (!GuestImageError.isInstance(error) || error.code !== 'INVALID_ARGUMENT') throw error;
    const index = error.details.index;
    const share = typeof index === 'number' ? mounted[index] : undefined;
    const field = share ? `shares[${share.i}].guestPath` : String(error.details.field ?? 'image');
    throw invalidSpec(field, error.message.replace(/^[^:]*: /, ''), error);
  }
  const shares = mounted.map((s) => ` myhv.share=${s.tag}:${s.path}`);
  const command =
    spec.command === undefined
      ? 0
      : ' myhv.cmd='.length + Math.ceil((Buffer.byteLength(spec.command) * 4) / 3);
  const length =
    spec.cmdline.trim().length +
    ` myhv.hostname=${guestHostname(spec.name)}`.length +
    shares.join('').length +
    command +
    NETWORK_ARGS_RESERVE;
  if (length > KERNEL_CMDLINE_MAX) {
    throw invalidSpec(
      spec.command === undefined ? 'cmdline' : 'command',
      `with the guest's arguments the kernel command line would be about ${length} bytes; the guest kernel keeps ${KERNEL_CMDLINE_MAX}`,
    );
  }
}

/** The checks net-ops makes beyond its schema (ICMP rules with ports), with the field named as ours are. */
function assertPolicyRules(spec: VmSpec): void {
  const policy = networkPolicy(spec);
  if (!policy) return;
  try {
    parseNetworkPolicy(policy, 'network');
  } catch (error) {
    if (!NetOpsError.isInstance(error) || error.code !== 'INVALID_ARGUMENT') throw error;
    const field = String(error.details.field ?? 'network').replace(/\.(\d+)(?=\.|$)/g, '[$1]');
    throw invalidSpec(field, error.message.replace(/^[^:]*: /, ''), error);
  }
}

/**
 * The policy a spec asks its network backend for: only the fields it sets (undefined when none), so the backend
 * applies its own defaults.
 */
export function networkPolicy(spec: Pick<VmSpec, 'network'>): VmNetworkPolicy | undefined {
  const { isolation, egress } = spec.network;
  if (isolation === undefined && egress === undefined) return undefined;
  return { ...(isolation !== undefined ? { isolation } : {}), ...(egress !== undefined ? { egress } : {}) };
}

/** The network a VM joins: its spec's `network.name`, or `default`. */
export function networkName(spec: Pick<VmSpec, 'network'>): string {
  return spec.network.name ?? 'default';
}
