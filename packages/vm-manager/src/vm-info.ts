import type { PortForwardRule } from '@my-hypervisor/net-ops';
import type { ShareRecord } from '@my-hypervisor/storage';
import { type VmLimits, vmLimits } from './confinement.js';
import { listNics } from './nics.js';
import { type ProcessConfinement, readProcessConfinement } from './process-confinement.js';
import type { VmSpec } from './spec.js';
import type { VmRecord, VmStatus } from './state-store.js';
import { vmmAlive } from './vmm.js';

/** File names inside a VM's state directory. */
export const SERIAL_LOG = 'serial.log';
export const VMM_LOG = 'vmm.log';

/** A VM as callers see it: the record plus whether its VMM process is alive right now. */
export interface VmInfo {
  readonly id: string;
  readonly name: string;
  readonly status: VmStatus;
  /** False when the record says running/paused but the VMM is gone (crashed, killed, host rebooted). */
  readonly vmmAlive: boolean;
  readonly pid?: number;
  readonly ip?: string;
  readonly tap?: string;
  readonly mac?: string;
  readonly bridge?: string;
  /** The network namespace the VM's TAP and VMM are in, when its backend gives each VM its own. */
  readonly netns?: string;
  readonly ipv6?: string;
  /** Its NICs beyond the first (`spec.nics`): device id, TAP, MAC and address once attached. */
  readonly nics?: readonly { id: string; tap: string; mac?: string; ip?: string }[];
  readonly forwards: readonly PortForwardRule[];
  readonly shares: readonly { tag: string; hostPath: string; readOnly: boolean; socketPath?: string }[];
  readonly spec: VmSpec;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly pending?: VmRecord['pending'];
  readonly lastError?: VmRecord['lastError'];
  readonly paths: {
    readonly dir: string;
    readonly serialLog: string;
    readonly vmmLog: string;
    readonly socket?: string;
  };
  /**
   * Set when the VM's VMM runs confined (confinement.ts): its uid/gid, its cgroup and the limits it holds, and (from
   * `get()` only, read from /proc) how each of its processes runs now.
   */
  readonly confinement?: {
    readonly uid: number;
    readonly gid: number;
    readonly cgroup?: string;
    readonly limits: VmLimits;
    /** The directories its VMM's Landlock rules open besides its config's files; absent without Landlock. */
    readonly landlock?: readonly string[];
    /** Its VMM may use userfaultfd (`ConfinementOptions.userfaultfd`): restores load memory on demand. */
    readonly userfaultfd?: boolean;
    readonly processes?: readonly ProcessConfinement[];
  };
}

/**
 * A VM as callers see it, from its record and its state directory. Called once per VM by `list()` (`myhv vm ls` over thousands of VMs): plain assignments in the documented key
 * order rather than conditional spreads, and only the paths a VmInfo shows.
 */
export function vmInfo(record: VmRecord, dir: string, alive = vmmAlive(record.resources.vmm)): VmInfo {
  const { resources, spec } = record;
  const vmm = resources.vmm;
  const net = resources.network;
  const info: { -readonly [K in keyof VmInfo]?: VmInfo[K] } = {
    id: record.id,
    name: record.name,
    status: record.status,
    vmmAlive: alive,
  };
  if (vmm?.pid !== undefined) info.pid = vmm.pid;
  if (resources.ip) info.ip = resources.ip;
  if (net) {
    info.tap = net.tap;
    info.mac = net.mac;
    info.bridge = net.bridge;
    if (net.netns) info.netns = net.netns;
    if (net.ipv6) info.ipv6 = net.ipv6.address;
  }
  if (spec.nics?.length) info.nics = listNics(record);
  info.forwards = resources.forwards;
  info.shares = spec.shares.length === 0 ? [] : spec.shares.map((s) => shareInfo(s, resources.shares));
  info.spec = spec;
  info.createdAt = record.createdAt;
  info.updatedAt = record.updatedAt;
  if (record.pending) info.pending = record.pending;
  if (record.lastError) info.lastError = record.lastError;
  const confined = resources.confinement;
  if (confined) {
    info.confinement = {
      uid: confined.uid,
      gid: confined.gid,
      ...(confined.cgroup ? { cgroup: confined.cgroup } : {}),
      limits: vmLimits(spec),
      ...(confined.landlock ? { landlock: confined.landlock } : {}),
      ...(confined.userfaultfd ? { userfaultfd: true } : {}),
    };
  }
  info.paths = vmm
    ? { dir, serialLog: `${dir}/${SERIAL_LOG}`, vmmLog: `${dir}/${VMM_LOG}`, socket: vmm.socketPath }
    : { dir, serialLog: `${dir}/${SERIAL_LOG}`, vmmLog: `${dir}/${VMM_LOG}` };
  return info as VmInfo;
}

function shareInfo(
  share: VmSpec['shares'][number],
  live: VmRecord['resources']['shares'],
): VmInfo['shares'][number] {
  const state = live.find((r) => r.tag === share.tag);
  const socketPath = state ? shareSocket(state) : undefined;
  return {
    tag: share.tag,
    hostPath: share.hostPath,
    readOnly: share.readOnly,
    ...(socketPath ? { socketPath } : {}),
  };
}

export function shareSocket(share: { record?: unknown }): string {
  return (share.record as ShareRecord | undefined)?.socketPath ?? '';
}

/** `info` with how each live process of the VM runs now (/proc): its VMM, then each share's virtiofsd. */
export function withProcesses(info: VmInfo, record: VmRecord): VmInfo {
  if (!info.confinement || !vmmAlive(record.resources.vmm)) return info;
  const processes: ProcessConfinement[] = [];
  const vmm = readProcessConfinement(record.resources.vmm!.pid!, 'vmm');
  if (vmm) processes.push(vmm);
  for (const share of record.resources.shares) {
    const pid = (share.record as { pid?: unknown } | undefined)?.pid;
    const found = typeof pid === 'number' ? readProcessConfinement(pid, 'virtiofsd', share.tag) : undefined;
    if (found) processes.push(found);
  }
  return { ...info, confinement: { ...info.confinement, processes } };
}
