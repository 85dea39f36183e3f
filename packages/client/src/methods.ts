import { vmSpecSchema } from '@my-hypervisor/vm-manager';
import { z } from 'zod';

// The daemon's methods: the wire contract both the daemon and this client are built from. Params are objects by
// name; each schema is the envelope the daemon checks before any work, and the VmManager behind it checks the
// content again with the library's own schemas (vm.create's `spec` is `vmSpecSchema` itself).

const vmName = z.string().min(1).max(64).describe('The VM name.');
const progress = z
  .boolean()
  .optional()
  .describe('Send `vm.progress` notifications ({ id, event }) for each step before the answer.');
const gracefulMs = z
  .number()
  .int()
  .min(0)
  .max(600_000)
  .optional()
  .describe('How long the guest may take to power off before the VMM is stopped (ms).');
const deviceId = z.string().min(1).max(64);

const empty = z.object({}).strict();
const named = z.object({ name: vmName }).strict();
const namedWithProgress = z.object({ name: vmName, progress }).strict();

/** One method of the daemon: its name, what it does, its params schema and what it answers. */
export interface DaemonMethodDefinition {
  readonly name: string;
  readonly summary: string;
  readonly params: z.ZodType;
  /**
   * What the daemon checks before any work, when it is looser than `params`: the manager then checks the rest
   * with the same schema, so errors name fields exactly as in-process (`cpus`, not `spec.cpus`).
   */
  readonly envelope?: z.ZodType;
  /** The result's name in the OpenRPC document, and the library type it is. */
  readonly result: { readonly name: string; readonly type: string };
  /** True when `progress: true` is accepted. */
  readonly progress?: boolean;
}

function method<P extends z.ZodType>(
  name: string,
  summary: string,
  params: P,
  result: { name: string; type: string },
  extra: { progress?: boolean; envelope?: z.ZodType } = {},
) {
  return { name, summary, params, result, ...extra } as const;
}

/** A method that changes a VM: it takes `progress`, like every manager operation with steps. */
function operation<S extends z.ZodRawShape>(
  name: string,
  summary: string,
  shape: S,
  result: { name: string; type: string },
) {
  return method(name, summary, z.object({ ...shape, progress }).strict(), result, { progress: true });
}

const vmInfo = { name: 'vm', type: 'VmInfo' };
const vmDevices = { name: 'devices', type: 'VmDevices' };

const definitions = {
  'rpc.discover': method('rpc.discover', 'The OpenRPC document of this API.', empty, {
    name: 'document',
    type: 'OpenrpcDocument',
  }),
  'daemon.hello': method(
    'daemon.hello',
    "Who answers, cheaply: the daemon's version, pid and the host settings it runs with (state directory, network " +
      'backend, subnet, …), for a client to check against its own before sending work.',
    empty,
    { name: 'hello', type: 'DaemonHello' },
  ),
  'daemon.status': method(
    'daemon.status',
    "The daemon's version, pid, uptime, connections, VM count and host settings.",
    empty,
    { name: 'status', type: 'DaemonStatus' },
  ),
  'dashboard.login': method(
    'dashboard.login',
    "A one-time login link for the daemon's web dashboard (used once, valid 60 s): who may call the daemon may " +
      'log in. WRONG_STATE when the daemon serves no dashboard. Not available to the dashboard itself.',
    empty,
    { name: 'login', type: 'DashboardLogin' },
  ),
  'vm.list': method('vm.list', 'Every VM whose record can be read, sorted by name.', empty, {
    name: 'vms',
    type: 'VmInfo[]',
  }),
  'vm.listAll': method(
    'vm.listAll',
    'Every VM, and every VM directory whose record cannot be used (with the path at fault and why).',
    empty,
    { name: 'listing', type: '{ vms: VmInfo[]; unreadable: UnreadableRecord[] }' },
  ),
  'vm.get': method('vm.get', 'One VM.', named, vmInfo),
  'vm.create': method(
    'vm.create',
    'Creates and boots a VM from its spec.',
    z.object({ spec: vmSpecSchema, progress }).strict(),
    vmInfo,
    { progress: true, envelope: z.object({ spec: z.record(z.string(), z.unknown()), progress }).strict() },
  ),
  'vm.start': method('vm.start', 'Starts a stopped VM.', namedWithProgress, vmInfo, { progress: true }),
  'vm.stop': method(
    'vm.stop',
    'Stops a VM (ACPI power button, then the VMM).',
    z.object({ name: vmName, gracefulMs, progress }).strict(),
    vmInfo,
    { progress: true },
  ),
  'vm.restart': method(
    'vm.restart',
    'Stops and starts a VM.',
    z.object({ name: vmName, gracefulMs, progress }).strict(),
    vmInfo,
    { progress: true },
  ),
  'vm.delete': method(
    'vm.delete',
    'Deletes a VM and everything it owns; a running VM only with force.',
    z.object({ name: vmName, force: z.boolean().optional(), progress }).strict(),
    { name: 'deleted', type: '{ name: string; id: string }' },
    { progress: true },
  ),
  'vm.pause': operation('vm.pause', 'Pauses a running VM.', { name: vmName }, vmInfo),
  'vm.resume': operation('vm.resume', 'Resumes a paused VM.', { name: vmName }, vmInfo),
  'vm.resize': operation(
    'vm.resize',
    'Changes vCPUs and/or memory within the spec maximums.',
    {
      name: vmName,
      cpus: z.number().int().min(1).max(255).optional(),
      memory: z.union([z.string().min(1).max(32), z.number().int().positive()]).optional(),
    },
    vmInfo,
  ),
  'vm.stats': method('vm.stats', 'Counters of the VM, its VMM and its devices.', named, {
    name: 'stats',
    type: 'VmStats',
  }),
  'vm.logs': method(
    'vm.logs',
    "The end of the VM's serial console log (or its VMM's log), from a line start.",
    z
      .object({
        name: vmName,
        log: z.enum(['serial', 'vmm']).optional().describe('Which log; default serial.'),
        maxBytes: z
          .number()
          .int()
          .min(1)
          .max(1024 * 1024)
          .optional()
          .describe('At most this many bytes from the end; default 65536.'),
      })
      .strict(),
    { name: 'log', type: "{ vm: string; log: 'serial' | 'vmm'; path: string; text: string }" },
  ),
  'vm.devices': method('vm.devices', "The VM's disks, shares and extra NICs.", named, vmDevices),
  'vm.disk.add': operation(
    'vm.disk.add',
    'Adds a disk (hot-plugged when running).',
    { name: vmName, path: z.string().min(1).max(4096), readOnly: z.boolean().optional() },
    vmDevices,
  ),
  'vm.disk.remove': operation(
    'vm.disk.remove',
    'Removes a disk by device id.',
    { name: vmName, id: deviceId },
    vmDevices,
  ),
  'vm.share.add': operation(
    'vm.share.add',
    'Shares a host folder under a tag (virtiofs).',
    {
      name: vmName,
      hostPath: z.string().min(1).max(4096),
      tag: z.string().min(1).max(36),
      readOnly: z.boolean().optional(),
      guestPath: z.string().min(1).max(4096).optional(),
    },
    vmDevices,
  ),
  'vm.share.remove': operation(
    'vm.share.remove',
    'Removes a share by tag.',
    { name: vmName, tag: z.string().min(1).max(36) },
    vmDevices,
  ),
  'vm.nic.add': operation(
    'vm.nic.add',
    "Adds a NIC on the VM's network.",
    { name: vmName, mac: z.string().min(1).max(17).optional() },
    vmDevices,
  ),
  'vm.nic.remove': operation(
    'vm.nic.remove',
    'Removes a NIC by id.',
    { name: vmName, id: deviceId },
    vmDevices,
  ),
  'vm.forward.add': operation(
    'vm.forward.add',
    'Forwards a host port to the VM.',
    {
      name: vmName,
      forward: z
        .record(z.string(), z.unknown())
        .describe('A forward spec: { hostPort, guestPort, protocol?, hostIp? }.'),
    },
    vmInfo,
  ),
  'vm.forward.remove': operation(
    'vm.forward.remove',
    'Removes a port forward.',
    {
      name: vmName,
      protocol: z.enum(['tcp', 'udp']).optional(),
      hostPort: z.number().int().min(1).max(65_535),
    },
    { name: 'outcome', type: '{ removed: boolean; vm: VmInfo }' },
  ),
  'vm.snapshot.create': operation(
    'vm.snapshot.create',
    'Pauses, snapshots and resumes (unless leavePaused) the VM.',
    {
      name: vmName,
      to: z.string().min(1).max(4096).optional(),
      leavePaused: z.boolean().optional(),
    },
    { name: 'snapshot', type: 'VmSnapshot' },
  ),
  'vm.snapshot.list': method('vm.snapshot.list', "The VM's snapshots, oldest first.", named, {
    name: 'snapshots',
    type: 'VmSnapshot[]',
  }),
  'vm.snapshot.remove': operation(
    'vm.snapshot.remove',
    'Forgets a snapshot and deletes its files.',
    { name: vmName, id: z.string().min(1).max(64) },
    { name: 'snapshot', type: 'VmSnapshot' },
  ),
  'vm.restore': method(
    'vm.restore',
    'Restores the VM from a snapshot (default: the latest) and resumes it.',
    z.object({ name: vmName, from: z.string().min(1).max(64).optional(), progress }).strict(),
    vmInfo,
    { progress: true },
  ),
  'network.list': method(
    'network.list',
    'The networks recorded on this host (bridge, subnet, backend), by name.',
    empty,
    { name: 'networks', type: 'NetworkRecord[]' },
  ),
  'host.drift': method(
    'host.drift',
    'How the host differs from the records (bridge, TAPs, forwards).',
    empty,
    {
      name: 'drift',
      type: 'NetworkDrift[]',
    },
  ),
  'host.reconcile': method(
    'host.reconcile',
    'Repairs drift after a crash or reboot and reports every change.',
    z.object({ progress }).strict(),
    { name: 'report', type: 'ReconcileReport' },
    { progress: true },
  ),
  'events.journal': method(
    'events.journal',
    'Events from the journal of every process on this host, oldest first.',
    z
      .object({
        vm: vmName.optional(),
        since: z.iso.datetime().optional().describe('Only events written at or after this time (ISO 8601).'),
        limit: z.number().int().min(1).max(100_000).optional().describe('At most this many, the newest.'),
      })
      .strict(),
    { name: 'events', type: 'JournalEvent[]' },
  ),
  'events.subscribe': method(
    'events.subscribe',
    'Streams new journal events (of every process on this host) as `events.event` notifications ' +
      '({ subscription: <this request id>, event }). The call stays open until `$/cancel` of its id, the ' +
      'connection closes or the daemon stops; then it answers how it ended.',
    z.object({ vm: vmName.optional() }).strict(),
    { name: 'ended', type: "{ reason: 'cancelled' | 'closing' }" },
  ),
} as const satisfies Record<string, DaemonMethodDefinition>;

/** The name of a daemon method (`vm.create`, …). */
export type DaemonMethodName = keyof typeof definitions;

/** Every method the daemon serves, by name: what the daemon checks and the OpenRPC document is built from. */
export const daemonMethodDefinitions: Readonly<Record<DaemonMethodName, DaemonMethodDefinition>> =
  definitions;

/** The notification the daemon sends for a step of a call made with `progress: true`. */
export const PROGRESS_NOTIFICATION = 'vm.progress';
/** The notification the daemon sends for each event of a subscription. */
export const EVENT_NOTIFICATION = 'events.event';
/** Where myhvd listens unless told otherwise. */
export const DEFAULT_DAEMON_SOCKET = '/run/myhv/myhvd.sock';
