import type { BridgeOps, NatOps, NetworkBackend } from '@my-hypervisor/net-ops';
import type { StorageBackend } from '@my-hypervisor/storage';
import type { ConfinementOptions } from './confinement.js';
import type { JournalOptions } from './event-journal.js';
import type { StepEvent } from './events.js';
import type { HostProbe } from './host-probe.js';
import type { VmmOptions } from './vmm.js';

/** Where a `VmManager` keeps its state and which network, storage and VMM it drives. */
export interface VmManagerOptions {
  /** Where VM state lives (one directory per VM, IP reservations). Created 0700. */
  readonly stateDir: string;
  /** Where sockets live: keep it short (socket paths are limited to 108 bytes), e.g. /run/myhv. */
  readonly runDir: string;
  /**
   * Answer `list()` and `get()` with frozen VmInfo objects, the same ones while a VM is unchanged, and let `list()`
   * answer from memory while no myhv process changed a record (`StateStoreOptions.shareRecords`): for a
   * long-running process answering many queries, such as myhvd. Default false: every call returns new objects,
   * the caller's own.
   */
  readonly shareResults?: boolean;
  /** The default network VMs join; required for VMs with `network.enabled` and no `network.name`. */
  readonly network?: NetworkBackend;
  /**
   * Named networks, for VMs whose spec says `network.name` (see `NetworkStore` for their records). Each has its
   * own bridge and subnet, so its own IP reservations.
   */
  readonly networks?: Readonly<Record<string, NetworkBackend>>;
  /**
   * The network for VMs whose spec asks for `network.mycelium`: a `MyceliumNetwork` over the same bridge and
   * subnet as `network`, so both kinds of VM share addresses and forwards.
   */
  readonly mycelium?: NetworkBackend;
  /** Shared folders; required for VMs with shares. */
  readonly storage?: StorageBackend;
  readonly vmm?: VmmOptions;
  /**
   * Ops `reconcile` uses to find leftovers no VM owns (ports on the bridge, forwards). Optional: without them
   * reconcile repairs what the records name and skips the sweep.
   */
  readonly inventory?: { readonly bridge?: BridgeOps; readonly nat?: NatOps };
  /** How long an operation waits for another process's lock on the same VM. Default 30 s. */
  readonly lockTimeoutMs?: number;
  /**
   * How `create` and `addForward` learn the host's addresses and listening ports, to refuse a forward's foreign
   * host IP or taken port before any work. Default: reads the namespace of `vmm.netns` (via `ip`), else this
   * process's (os.networkInterfaces(), /proc/net).
   */
  readonly hostProbe?: HostProbe;
  /**
   * The event journal every emitted event is appended to (`<stateDir>/events/journal.ndjson`, read by `journal()`):
   * its size and rotation, or `false` to write none. Default: on, 4 MiB, 3 rotated files kept.
   */
  readonly journal?: JournalOptions | false;
  /**
   * Least privilege for VMMs (confinement.ts): by default (`auto`) each VMM started as root runs as a uid of its
   * own, with no capabilities, `no_new_privs`, Landlock and a cgroup holding the spec's `limits`.
   */
  readonly confinement?: ConfinementOptions;
}

/** Options every `VmManager` operation takes: cancellation and progress. */
export interface OperationOptions {
  readonly signal?: AbortSignal;
  /** Called for each pipeline step (start, done with timing, failed, undo). */
  readonly onProgress?: (event: StepEvent) => void;
}
