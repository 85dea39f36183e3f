// The wire shapes the page reads, narrowed to the fields it shows. The sources of truth are in
// @my-hypervisor/vm-manager (vm-info.ts, spec.ts, state-store.ts, events.ts, event-journal.ts, vm-stats.ts); they are
// restated here because the page is built for the browser and may not pull in Node types.

export type VmStatus = 'creating' | 'stopped' | 'running' | 'paused' | 'deleting';

export interface Forward {
  readonly protocol: 'tcp' | 'udp';
  readonly hostPort: number;
  readonly guestPort: number;
  readonly hostIp?: string;
  readonly guestIp?: string;
}

/** A parsed VmSpec: memory in bytes, defaults filled. */
export interface VmSpec {
  readonly name: string;
  readonly cpus: number;
  readonly cpusMax?: number;
  readonly memory: number;
  readonly kernel: string;
  readonly initramfs?: string;
  readonly image?: string;
  readonly command?: string;
  readonly cmdline: string;
  readonly disks: readonly { readonly path: string; readonly readOnly: boolean }[];
  readonly network?: {
    readonly enabled?: boolean;
    readonly name?: string;
    readonly forwards?: readonly Forward[];
  };
}

export interface VmInfo {
  readonly id: string;
  readonly name: string;
  readonly status: VmStatus;
  readonly vmmAlive: boolean;
  readonly pid?: number;
  readonly ip?: string;
  readonly tap?: string;
  readonly mac?: string;
  readonly bridge?: string;
  readonly netns?: string;
  readonly ipv6?: string;
  readonly forwards: readonly Forward[];
  readonly shares: readonly { tag: string; hostPath: string; readOnly: boolean; socketPath?: string }[];
  readonly spec: VmSpec;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly pending?: { readonly op: string; readonly step: string; readonly since: string };
  readonly lastError?: {
    readonly code: string;
    readonly message: string;
    readonly step?: string;
    readonly at: string;
  };
}

interface JournalMeta {
  readonly vm: string;
  readonly time: string;
  readonly pid: number;
  readonly seq: number;
}

export type JournalEvent = JournalMeta &
  (
    | {
        readonly type: 'step';
        readonly op: string;
        readonly step: string;
        readonly phase: 'start' | 'done' | 'failed' | 'undo' | 'undone';
        readonly ms?: number;
        readonly error?: string;
      }
    | { readonly type: 'status'; readonly status: VmStatus | 'deleted' }
    | {
        readonly type: 'vmm';
        readonly source: string;
        readonly event: string;
        readonly properties?: Readonly<Record<string, string>>;
      }
  );

export interface VmSnapshot {
  readonly id: string;
  readonly path: string;
  readonly createdAt: string;
  readonly sizeBytes: number;
  readonly status: VmStatus;
}

export interface ProcessStats {
  readonly pid: number;
  readonly cpuSeconds: number;
  readonly rssBytes: number;
  readonly threads: number;
}

export interface VmStats {
  readonly vm: string;
  readonly at: string;
  readonly status: 'running' | 'paused';
  /** Device id (`_net0`, `disk-…`) → counter (`rx_bytes`, `tx_bytes`, `read_bytes`, …) → value. */
  readonly counters: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly vmm: ProcessStats;
}

export interface VmLog {
  readonly vm: string;
  readonly log: 'serial' | 'vmm';
  readonly path: string;
  readonly text: string;
}

export interface Session {
  readonly csrfToken: string;
  readonly version: string;
}
