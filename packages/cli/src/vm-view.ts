import type { PortForwardRule } from '@my-hypervisor/net-ops';
import type { StepEvent, UnreadableRecord, VmInfo } from '@my-hypervisor/vm-manager';
import { formatEgress } from './egress-arg.js';
import { formatDuration, formatForward, formatMemory } from './format.js';

/** One VM in `vm ls --json`. */
export interface VmSummaryJson {
  readonly name: string;
  readonly id: string;
  readonly status: VmInfo['status'];
  /** False when the record says running/paused but the VMM process is gone (`myhv gc` repairs it). */
  readonly vmmAlive: boolean;
  readonly ip: string | null;
  readonly cpus: number;
  /** Bytes. */
  readonly memory: number;
  readonly forwards: readonly ForwardJson[];
  /** Share tags. */
  readonly shares: readonly string[];
  readonly createdAt: string;
}

/** A port forward in JSON output. */
export interface ForwardJson {
  readonly protocol: 'tcp' | 'udp';
  readonly hostPort: number;
  readonly guestIp: string;
  readonly guestPort: number;
  readonly hostIp: string | null;
}

export function forwardJson(rule: PortForwardRule): ForwardJson {
  return {
    protocol: rule.protocol,
    hostPort: rule.hostPort,
    guestIp: rule.guestIp,
    guestPort: rule.guestPort,
    hostIp: rule.hostIp ?? null,
  };
}

export function vmSummary(info: VmInfo): VmSummaryJson {
  return {
    name: info.name,
    id: info.id,
    status: info.status,
    vmmAlive: info.vmmAlive,
    ip: info.ip ?? null,
    cpus: info.spec.cpus,
    memory: info.spec.memory,
    forwards: info.forwards.map(forwardJson),
    shares: info.shares.map((s) => s.tag),
    createdAt: info.createdAt,
  };
}

/** A VM whose record cannot be used, in `vm ls --json` and `gc --json` (`unreadable`). */
export interface UnreadableJson {
  readonly name: string;
  /** The file or directory at fault. */
  readonly path: string;
  /** CORRUPT_STATE (missing, unreadable, not a record) or UNSAFE_PERMISSIONS (others own it or could write it). */
  readonly code: UnreadableRecord['code'];
  readonly reason: string;
}

export function unreadableJson(record: UnreadableRecord): UnreadableJson {
  return { name: record.name, path: record.path, code: record.code, reason: record.reason };
}

/** A `vm ls` row for a VM whose record cannot be used: status `unreadable`, nothing else known. */
export function unreadableRow(record: UnreadableRecord): string[] {
  return [record.name, 'unreadable', '-', '-', '-', '-'];
}

/** One line for people: which VM, the path at fault, why, and what to do. */
export function unreadableLine(record: UnreadableRecord): string {
  const what =
    record.code === 'UNSAFE_PERMISSIONS'
      ? record.reason
      : `${record.path}: ${record.reason}; fix or remove it (rm -r ${record.path.replace(/\/state\.json$/, '')}), then run \`myhv gc\``;
  return `VM ${record.name} is unreadable: ${what}`;
}

/** The status people see: the record's, flagged when the VMM behind a running VM is gone. */
export function statusText(info: Pick<VmInfo, 'status' | 'vmmAlive' | 'pending'>): string {
  if ((info.status === 'running' || info.status === 'paused') && !info.vmmAlive)
    return `${info.status} (VMM gone)`;
  if (info.pending) return `${info.status} (${info.pending.op} at ${info.pending.step})`;
  return info.status;
}

export const vmTableHeaders = ['name', 'status', 'ip', 'cpus', 'memory', 'forwards'] as const;

export function vmTableRow(info: VmInfo): string[] {
  return [
    info.name,
    statusText(info),
    info.ip ?? '-',
    String(info.spec.cpus),
    formatMemory(info.spec.memory),
    info.forwards.length === 0
      ? '-'
      : info.forwards.map((f) => formatForward({ ...f, guestIp: '' })).join(','),
  ];
}

/** `vm inspect` for people. */
export function inspectFields(info: VmInfo): [string, string][] {
  const fields: [string, string][] = [
    ['name', info.name],
    ['id', info.id],
    ...labelFields(info),
    [
      'status',
      `${statusText(info)}${info.pid !== undefined && info.vmmAlive ? ` (VMM pid ${info.pid})` : ''}`,
    ],
    ['cpus', info.spec.cpusMax ? `${info.spec.cpus} (max ${info.spec.cpusMax})` : String(info.spec.cpus)],
    [
      'memory',
      info.spec.memoryHotplug
        ? `${formatMemory(info.spec.memory)} (up to ${formatMemory(info.spec.memory + info.spec.memoryHotplug)})`
        : formatMemory(info.spec.memory),
    ],
    ['kernel', info.spec.kernel],
  ];
  if (info.spec.initramfs) fields.push(['initramfs', info.spec.initramfs]);
  fields.push(['cmdline', info.spec.cmdline]);
  if (info.ip) fields.push(['ip', info.ip]);
  if (info.tap) fields.push(['network', `tap ${info.tap} on ${info.bridge ?? '?'}, mac ${info.mac ?? '?'}`]);
  for (const n of info.nics ?? [])
    fields.push(['nic', `${n.id}: tap ${n.tap}, mac ${n.mac ?? '?'}, ip ${n.ip ?? '?'}`]);
  if (info.netns) fields.push(['netns', info.netns]);
  fields.push(...policyFields(info));
  if (info.ipv6) fields.push(['ipv6', info.ipv6]);
  if (!info.spec.network.enabled) fields.push(['network', 'none']);
  for (const f of info.forwards) fields.push(['forward', formatForward(f)]);
  for (const d of info.spec.disks) fields.push(['disk', `${d.path}${d.readOnly ? ' (read-only)' : ''}`]);
  for (const s of info.shares) {
    fields.push(['share', `${s.tag} → ${s.hostPath}${s.readOnly ? ' (read-only)' : ''}`]);
  }
  fields.push(...confinementFields(info));
  fields.push(['serial log', info.paths.serialLog], ['vmm log', info.paths.vmmLog]);
  if (info.paths.socket) fields.push(['api socket', info.paths.socket]);
  fields.push(['created', info.createdAt], ['updated', info.updatedAt]);
  if (info.lastError) {
    fields.push(['last error', `${info.lastError.code}: ${info.lastError.message} (${info.lastError.at})`]);
  }
  return fields;
}

/** The VM's labels on one line, `key=value` in the spec's order (as `kubectl get --show-labels` lists them). */
function labelFields(info: VmInfo): [string, string][] {
  const entries = Object.entries(info.spec.labels ?? {});
  if (entries.length === 0) return [];
  return [['labels', entries.map(([key, value]) => `${key}=${value}`).join(',')]];
}

/** How the VM's processes are confined: its uid, cgroup and limits, then each live process as /proc shows it. */
function confinementFields(info: VmInfo): [string, string][] {
  const c = info.confinement;
  if (!c) return [['confinement', 'none (the VMM runs as root)']];
  const { cpus, memoryBytes, pids } = c.limits;
  const fields: [string, string][] = [
    ['confinement', `uid ${c.uid} gid ${c.gid}${c.cgroup ? `, cgroup ${c.cgroup}` : ', no cgroup'}`],
    ['limits', `${cpus} cpus, ${formatMemory(memoryBytes)} memory, ${pids} pids`],
  ];
  if (c.landlock) fields.push(['landlock', `its config's files and ${c.landlock.join(', ')}`]);
  if (c.userfaultfd)
    fields.push(['userfaultfd', 'its own /dev/userfaultfd (restores load memory on demand)']);
  for (const p of c.processes ?? []) {
    const caps = /^0+$/.test(p.capEff) ? 'no capabilities' : `capabilities ${p.capEff}`;
    const mode = ['seccomp off', 'seccomp strict', 'seccomp filter'][p.seccomp] ?? `seccomp ${p.seccomp}`;
    const seccomp =
      p.seccompThreads && p.seccomp === 2
        ? `${mode} (${p.seccompThreads.filtered} of ${p.seccompThreads.total} threads)`
        : mode;
    fields.push([
      p.role === 'vmm' ? 'vmm process' : `virtiofsd ${p.tag ?? ''}`.trim(),
      `pid ${p.pid} uid ${p.uid}, ${caps}, ${p.noNewPrivs ? 'no_new_privs' : 'may gain privileges'}, ${seccomp}` +
        (p.cgroups.length ? `, cgroup ${p.cgroups.join(' ')}` : ''),
    ]);
  }
  return fields;
}

/**
 * The VM's network policy for people. A VM in its own namespace has the namespace backend's defaults (isolated,
 * egress open) where its spec sets none; elsewhere only what the spec sets is shown.
 */
function policyFields(info: VmInfo): [string, string][] {
  const { enabled, isolation, egress } = info.spec.network;
  if (!enabled || (!info.netns && isolation === undefined && egress === undefined)) return [];
  return [
    ['isolation', isolation ?? 'vm (default)'],
    ['egress', egress === undefined ? 'allow-all (default)' : formatEgress(egress)],
  ];
}

/** The steps of an operation in JSON output: finished ones with their time. */
export interface StepJson {
  readonly vm: string;
  readonly op: string;
  readonly step: string;
  readonly phase: StepEvent['phase'];
  readonly ms: number | null;
  readonly error: string | null;
}

export function stepJson(event: StepEvent): StepJson {
  return {
    vm: event.vm,
    op: event.op,
    step: event.step,
    phase: event.phase,
    ms: event.ms === undefined ? null : Math.round(event.ms * 100) / 100,
    error: event.error ?? null,
  };
}

/** A recorder of step events for JSON output that also forwards them to the progress printer. */
export function recordSteps(print: (event: StepEvent) => void): {
  readonly onProgress: (event: StepEvent) => void;
  readonly steps: StepJson[];
} {
  const steps: StepJson[] = [];
  return {
    steps,
    onProgress: (event) => {
      if (event.phase !== 'start' && event.phase !== 'undo') steps.push(stepJson(event));
      print(event);
    },
  };
}

export function totalMs(steps: readonly StepJson[]): string {
  return formatDuration(steps.reduce((sum, s) => sum + (s.ms ?? 0), 0));
}

/**
 * A repair's target for people. A VM namespace that reconcile deleted is reported by VM id (`netns`, 12 hex
 * digits): shown as the namespace `ip netns list` knows (`prefix`: `vmNamespacePrefix(stateDir)`).
 */
export function changeTarget(
  change: { readonly kind: string; readonly target: string },
  prefix: string,
): string {
  return change.kind === 'netns' && /^[0-9a-f]{12}$/.test(change.target)
    ? `${prefix}${change.target}`
    : change.target;
}
