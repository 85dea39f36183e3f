import { invalidSpec, throwIfAborted, VmManagerError } from './errors.js';
import { defaultHostProbe, type HostProbe } from './host-probe.js';
import type { VmManagerOptions } from './manager-options.js';
import type { ForwardSpec } from './spec.js';
import { StateStore, type VmRecord } from './state-store.js';

/** Host addresses a forward may name without being one of the host's own. */
const ANY_HOST_ADDRESSES: ReadonlySet<string> = new Set(['0.0.0.0', '127.0.0.1']);

/**
 * The checks a VM's forwards pass before any lock, address or TAP exists: each host IP is an address of the host
 * the forwards live on, and each host port is neither forwarded to another recorded VM (running or stopped) nor
 * held by a socket on that host. The network step would find a collision only after the TAP and address exist.
 */
export class ForwardChecks {
  readonly #store: StateStore;
  readonly #netns: string | undefined;
  #probe: HostProbe | undefined;

  constructor(options: Pick<VmManagerOptions, 'stateDir' | 'hostProbe' | 'vmm'>) {
    // Without the listing cache: a refused command must not even rewrite the cache file.
    this.#store = new StateStore(options.stateDir, { listingCache: false });
    this.#netns = options.vmm?.netns;
    this.#probe = options.hostProbe;
  }

  /** Built on first use: specs without forwards never need one. */
  get #hostProbe(): HostProbe {
    this.#probe ??= defaultHostProbe(this.#netns);
    return this.#probe;
  }

  /** For `create`: errors name `network.forwards[i].hostIp` / `.hostPort`. */
  async assertCreatable(vm: string, forwards: readonly ForwardSpec[], signal?: AbortSignal): Promise<void> {
    await this.#assertAvailable(
      vm,
      forwards.map((forward, i) => ({ forward, field: `network.forwards[${i}]` })),
      signal,
    );
  }

  /**
   * For `addForward`: errors name `hostIp` / `hostPort`, as parseForwardSpec's do. The VM's own forward again passes
   * (addForward makes it a no-op); another forward on one of its ports is a CONFLICT. A VM without a network is
   * refused here too, so that nothing (not even the lock file) is written for it.
   */
  async assertAddable(vm: string, forward: ForwardSpec, signal?: AbortSignal): Promise<void> {
    const record = await this.#store.read(vm);
    // No such VM: addForward says so under its lock.
    if (!record) return;
    if (!record.spec.network.enabled)
      throw invalidSpec('network.enabled', `${vm} has no network to forward to`);
    const own = record.spec.network.forwards.find((f) => sameHostPort(f, forward));
    if (own) {
      if (own.guestPort === forward.guestPort && (own.hostIp ?? null) === (forward.hostIp ?? null)) return;
      throw conflict(vm, 'hostPort', `${vm} already forwards ${portKey(forward)} (to port ${own.guestPort})`);
    }
    await this.#assertAvailable(vm, [{ forward, field: '' }], signal);
  }

  async #assertAvailable(
    vm: string,
    forwards: readonly { forward: ForwardSpec; field: string }[],
    signal: AbortSignal | undefined,
  ): Promise<void> {
    if (forwards.length === 0) return;
    const name = (field: string, key: 'hostIp' | 'hostPort') => (field ? `${field}.${key}` : key);
    const where = this.#netns ? `network namespace ${this.#netns}` : 'this host';
    const inWhere = this.#netns ? `in ${where}` : `on ${where}`;

    const named = forwards.filter(({ forward }) => forward.hostIp && !ANY_HOST_ADDRESSES.has(forward.hostIp));
    if (named.length > 0) {
      const addresses = new Set(await this.#hostProbe.localAddresses(signal ? { signal } : {}));
      for (const { forward, field } of named) {
        if (!addresses.has(forward.hostIp!)) {
          throw invalidSpec(
            name(field, 'hostIp'),
            `${forward.hostIp} is not an address of ${where} (use one of its addresses, 0.0.0.0 or 127.0.0.1)`,
          );
        }
      }
    }

    throwIfAborted(signal);
    const owners = new Map<string, string>();
    for (const record of this.#store.list().records) {
      if (record.name === vm) continue;
      for (const f of forwardsOf(record)) owners.set(portKey(f), record.name);
    }
    for (const { forward, field } of forwards) {
      const owner = owners.get(portKey(forward));
      if (owner !== undefined) {
        throw conflict(
          vm,
          name(field, 'hostPort'),
          `${portKey(forward)} is already forwarded to VM ${owner}`,
          {
            owner,
          },
        );
      }
    }

    const protocols = [...new Set(forwards.map(({ forward }) => forward.protocol))];
    for (const protocol of protocols) {
      const held = await this.#hostProbe.listening(protocol, signal ? { signal } : {});
      for (const { forward, field } of forwards) {
        if (forward.protocol === protocol && held.has(forward.hostPort)) {
          throw conflict(
            vm,
            name(field, 'hostPort'),
            `${portKey(forward)} is in use: a socket ${inWhere} ${protocol === 'tcp' ? 'listens on' : 'is bound to'} it`,
          );
        }
      }
    }
  }
}

/** The forwards a record holds or will hold: installed ones, and the spec's unless the VM is being deleted. */
function forwardsOf(record: VmRecord): { protocol: string; hostPort: number }[] {
  const installed = record.resources?.forwards ?? [];
  return record.status === 'deleting' ? installed : [...installed, ...(record.spec?.network?.forwards ?? [])];
}

function sameHostPort(a: { protocol: string; hostPort: number }, b: { protocol: string; hostPort: number }) {
  return a.protocol === b.protocol && a.hostPort === b.hostPort;
}

function portKey(f: { protocol: string; hostPort: number }): string {
  return `${f.protocol}/${f.hostPort}`;
}

function conflict(vm: string, field: string, message: string, extra: Record<string, unknown> = {}) {
  return new VmManagerError('CONFLICT', `${field}: ${message}`, { details: { field, vm, ...extra } });
}
