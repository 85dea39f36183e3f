import { readFileSync } from 'node:fs';
import { parseProcStat } from '@my-hypervisor/host-utils';
import type { NetworkBackend } from '@my-hypervisor/net-ops';
import { type CgroupUsage, readCgroupUsage, type VmCgroup } from './cgroups.js';
import { throwIfAborted, VmManagerError } from './errors.js';
import { stepError } from './pipeline.js';
import type { VmRecord } from './state-store.js';
import { loadChvClient, vmmAlive } from './vmm.js';

/**
 * Clock ticks per second of /proc/<pid>/stat times: the kernel's USER_HZ, 100 on every Linux architecture Cloud
 * Hypervisor runs on (Node has no sysconf to ask).
 */
const USER_HZ = 100;

/** CPU time and memory of one host process, from /proc/<pid>/stat and /proc/<pid>/status. */
export interface ProcessStats {
  readonly pid: number;
  /** User plus system CPU time of all its threads, in seconds (10 ms resolution). */
  readonly cpuSeconds: number;
  readonly userSeconds: number;
  readonly systemSeconds: number;
  /** Resident set size (`VmRSS`), in bytes. */
  readonly rssBytes: number;
  readonly threads: number;
}

/** One snapshot of a VM's numbers; rates are differences of two snapshots over `at`. */
export interface VmStats {
  readonly vm: string;
  readonly id: string;
  /** When it was taken (ISO 8601, ms). */
  readonly at: string;
  readonly status: 'running' | 'paused';
  /**
   * `vm.counters`: device id (`_net0`, `disk-<hash>`) → counter → value. Net devices count `rx_bytes`, `rx_frames`,
   * `tx_bytes`, `tx_frames`; disks `read_bytes`, `write_bytes`, `read_ops`, `write_ops` and latencies.
   */
  readonly counters: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly vmm: ProcessStats;
  /** The virtiofsd of each share; `process` is undefined when its daemon is gone. */
  readonly shares: readonly { readonly tag: string; readonly process?: ProcessStats }[];
  /**
   * Packets the network policy dropped so far (`egressDenied`: outbound packets egress refused; `isolationDenied`:
   * to another VM, or to a host address or port not offered). Absent when the backend counts none, or could not
   * be read.
   */
  readonly network?: { readonly egressDenied: number; readonly isolationDenied: number };
  /**
   * The VM's cgroup (VMM and virtiofsd together) against its limits, where the VM runs confined in one; a field is
   * absent when the host does not account it (a limit absent: unlimited or not enforced).
   */
  readonly cgroup?: {
    readonly path: string;
    readonly memoryBytes?: number;
    readonly memoryLimitBytes?: number;
    readonly cpuSeconds?: number;
    readonly cpus?: number;
    readonly pids?: number;
    readonly pidsLimit?: number;
  };
}

/**
 * The process's numbers, or undefined when it is gone or is no longer the process the record names (same pid,
 * other start time: recycled).
 */
export function readProcessStats(pid: number, startTime?: number): ProcessStats | undefined {
  let stat: string;
  let status: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const identity = parseProcStat(stat);
  if (!identity || (startTime !== undefined && identity.startTime !== startTime)) return undefined;
  // After the `(comm)` field: state is field 3, utime 14, stime 15, num_threads 20 (proc(5)), so 0, 11, 12, 17.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const rssKb = Number(/^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1] ?? 0);
  const threads = Number(/^Threads:\s+(\d+)$/m.exec(status)?.[1] ?? fields[17]);
  return {
    pid,
    cpuSeconds: (utime + stime) / USER_HZ,
    userSeconds: utime / USER_HZ,
    systemSeconds: stime / USER_HZ,
    rssBytes: rssKb * 1024,
    threads,
  };
}

function shareProcess(record: unknown): ProcessStats | undefined {
  const share = record as { pid?: unknown; details?: { startTime?: unknown } } | undefined;
  if (typeof share?.pid !== 'number') return undefined;
  const startTime = share.details?.startTime;
  return readProcessStats(share.pid, typeof startTime === 'number' ? startTime : undefined);
}

/** The VM's counters and process numbers now. WRONG_STATE unless it runs (or is paused) with a live VMM. */
export async function takeVmStats(
  record: VmRecord,
  signal: AbortSignal | undefined,
  backend?: Pick<NetworkBackend, 'policyCounters'>,
  cgroup?: VmCgroup,
): Promise<VmStats> {
  const vmm = record.resources.vmm;
  const alive = vmmAlive(vmm);
  if ((record.status !== 'running' && record.status !== 'paused') || !alive) {
    throw new VmManagerError(
      'WRONG_STATE',
      `no stats for ${record.name}: it is ${alive ? record.status : 'not running'}`,
      { details: { vm: record.name, status: record.status } },
    );
  }
  throwIfAborted(signal);
  const { ChvClient } = await loadChvClient();
  await using client = new ChvClient({ socketPath: vmm!.socketPath });
  const timeout = AbortSignal.timeout(5_000);
  let counters: VmStats['counters'];
  try {
    counters = (await client.vmCounters({
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    })) as VmStats['counters'];
  } catch (error) {
    throw stepError(error, record.name, 'vm.counters');
  }
  const network = await policyCounters(
    record,
    backend,
    signal ? AbortSignal.any([signal, timeout]) : timeout,
  );
  const process = readProcessStats(vmm!.pid!, vmm!.startTime);
  if (!process) {
    throw new VmManagerError('WRONG_STATE', `no stats for ${record.name}: its VMM just exited`, {
      details: { vm: record.name, status: record.status },
    });
  }
  return {
    vm: record.name,
    id: record.id,
    at: new Date().toISOString(),
    status: record.status,
    counters,
    vmm: process,
    shares: record.resources.shares.map((s) => {
      const p = shareProcess(s.record);
      return p ? { tag: s.tag, process: p } : { tag: s.tag };
    }),
    ...(network ? { network } : {}),
    ...(cgroup ? { cgroup: await cgroupStats(cgroup) } : {}),
  };
}

async function cgroupStats(cgroup: VmCgroup): Promise<NonNullable<VmStats['cgroup']>> {
  const usage = await readCgroupUsage(cgroup).catch(() => ({}) as CgroupUsage);
  return {
    path: cgroup.display,
    ...(usage.memoryBytes !== undefined ? { memoryBytes: usage.memoryBytes } : {}),
    ...(usage.memoryLimitBytes !== undefined ? { memoryLimitBytes: usage.memoryLimitBytes } : {}),
    ...(usage.cpuUsageUsec !== undefined ? { cpuSeconds: usage.cpuUsageUsec / 1e6 } : {}),
    ...(usage.cpus !== undefined ? { cpus: usage.cpus } : {}),
    ...(usage.pids !== undefined ? { pids: usage.pids } : {}),
    ...(usage.pidsLimit !== undefined ? { pidsLimit: usage.pidsLimit } : {}),
  };
}

/** The backend's policy counters for the VM; undefined when it keeps none or they cannot be read (stats go on). */
async function policyCounters(
  record: VmRecord,
  backend: Pick<NetworkBackend, 'policyCounters'> | undefined,
  signal: AbortSignal,
): Promise<VmStats['network']> {
  if (!backend?.policyCounters) return undefined;
  try {
    const { egressDenied, isolationDenied } = await backend.policyCounters(record.id, { signal });
    return { egressDenied, isolationDenied };
  } catch {
    return undefined;
  }
}
