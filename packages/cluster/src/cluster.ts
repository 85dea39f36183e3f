import { type Ipv4Cidr, ipv4ToNumber, numberToIPv4, parseIPv4Cidr } from '@my-hypervisor/net-ops';
import { Etcd3, type IKeyValue, type Lease, type Namespace } from 'etcd3';
import type { VmStatusRecord } from './agent.js';
import { HOST_ID_RULE, isHostId } from './host-id.js';
import type { Assignment, ClusterVmSpec } from './placement.js';

const marker = Symbol.for('@my-hypervisor/cluster/ClusterError');

/** Stable error codes: the API. */
export type ClusterErrorCode =
  /** An option is invalid; `field` names it. */
  | 'INVALID_ARGUMENT'
  /** etcd does not answer, or has no quorum. */
  | 'UNAVAILABLE'
  /** Another live process holds this host id. */
  | 'CONFLICT'
  /** Every subnet of the cluster pool is taken. */
  | 'EXHAUSTED'
  /** The host's lease was lost (etcd unreachable past the TTL, or revoked): it must take no more cluster work. */
  | 'LEASE_LOST'
  /** No VM of that name in the cluster. */
  | 'NOT_FOUND';

/** The one error this package throws: a stable `code`, the option at fault, etcd's error as `cause`. */
export class ClusterError extends Error {
  declare readonly [marker]: true;
  override readonly name = 'ClusterError';
  readonly code: ClusterErrorCode;
  readonly field: string | undefined;
  constructor(code: ClusterErrorCode, message: string, options: { field?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.field = options.field;
    Object.defineProperty(this, marker, { value: true });
  }

  /** True for a ClusterError from any installed copy of this package. */
  static isInstance(value: unknown): value is ClusterError {
    return typeof value === 'object' && value !== null && marker in value;
  }
}

/** What a host offers the cluster (ADR 016): where its daemon is, its size and its labels. */
export interface HostInfo {
  /** Unique in the cluster: letters, digits, `.`, `_`, `-`; up to 63. */
  readonly id: string;
  /** Where its daemon can be reached (informative: hosts never call each other). */
  readonly address: string;
  /**
   * What it offers VMs: vCPUs (overcommitted as its operator chooses; placement never puts more on it) and guest
   * memory in bytes.
   */
  readonly capacity: { readonly cpus: number; readonly memoryBytes: number };
  readonly labels?: Readonly<Record<string, string>>;
}

/** A host as the cluster sees it. */
export interface HostRecord extends HostInfo {
  readonly subnet: string;
  readonly startedAt: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Names the host's installation (its state directory): an earlier incarnation's record may be taken over. */
  readonly instance?: string;
}

/** A live host and how long its lease has left. */
export interface LiveHost extends HostRecord {
  /** Seconds until the lease expires unless kept alive; -1 when it has just expired. */
  readonly leaseTtlSeconds: number;
  readonly leaseId: string;
}

/** How a host joins. */
export interface RegisterOptions {
  /** Lease TTL: how long after its last keep-alive a silent host stops counting as live. Default 10 s. */
  readonly ttlSeconds?: number;
  /** The pool per-host subnets are taken from. Default `10.80.0.0/12`. */
  readonly pool?: string;
  /** Prefix length of each host's subnet. Default 24. */
  readonly subnetPrefix?: number;
  /**
   * Identifies this host's installation across restarts (e.g. a random token kept in its state directory). A live
   * record of this id carrying the same `instance` is an earlier incarnation of this very host (a daemon restarted
   * within the TTL): it is taken over — moved to the new lease in one transaction, so the host never looks lost and
   * its VMs are not re-placed — instead of refused with CONFLICT. The caller must make sure that incarnation is gone.
   */
  readonly instance?: string;
}

/** A host's membership: its record, its lease, and what tells it the lease is gone. */
export interface Membership extends AsyncDisposable {
  readonly host: HostRecord;
  readonly leaseId: string;
  /** Aborts (reason: a LEASE_LOST ClusterError) when the lease is lost: take no more cluster work. */
  readonly lost: AbortSignal;
  /** Leaves: revokes the lease (the host's key goes at once) unless `revoke: false` (it expires after the TTL). */
  leave(options?: { revoke?: boolean }): Promise<void>;
}

/** One change under a watched prefix, with the revision to resume after. */
export interface ClusterEvent {
  readonly type: 'put' | 'delete';
  /** The key below the cluster prefix (`hosts/a`). */
  readonly key: string;
  readonly value: string;
  readonly modRevision: number;
}

/** Where the cluster's etcd is and which keys are this cluster's. */
export interface ClusterOptions {
  /** etcd endpoints, e.g. `http://127.0.0.1:2379`. */
  readonly endpoints: readonly string[];
  /** The key prefix of this cluster. Default `/myhv/`. */
  readonly prefix?: string;
  /** How long a call waits for etcd. Default 5 s. */
  readonly timeoutMs?: number;
}

/** A VM of the cluster as `vms()` lists it. */
export interface ClusterVm {
  readonly name: string;
  readonly spec: ClusterVmSpec;
  /** The revision its spec was last written at, and its status's (0: none yet): premises of a conditioned write. */
  readonly revision: number;
  readonly statusRevision: number;
  readonly assignment?: Assignment;
  /** What its host's agent last reported. */
  readonly status?: VmStatusRecord;
}

/** A connection to the cluster's etcd. */
export class Cluster implements AsyncDisposable {
  readonly #client: Etcd3;
  readonly #ns: Namespace;
  readonly #timeoutMs: number;

  constructor(options: ClusterOptions) {
    const { endpoints, prefix = '/myhv/', timeoutMs = 5_000 } = options;
    if (!Array.isArray(endpoints) || endpoints.length === 0) {
      throw new ClusterError('INVALID_ARGUMENT', 'endpoints: give at least one etcd URL', {
        field: 'endpoints',
      });
    }
    for (const [i, endpoint] of endpoints.entries()) {
      if (!/^https?:\/\/[^/\s]+\/?$/.test(endpoint)) {
        throw new ClusterError(
          'INVALID_ARGUMENT',
          `endpoints[${i}]: ${JSON.stringify(endpoint)} is not http(s)://host:port`,
          {
            field: `endpoints[${i}]`,
          },
        );
      }
    }
    if (!prefix.endsWith('/')) {
      throw new ClusterError('INVALID_ARGUMENT', 'prefix: must end with /', { field: 'prefix' });
    }
    this.#timeoutMs = timeoutMs;
    this.#client = new Etcd3({
      hosts: [...endpoints],
      dialTimeout: timeoutMs,
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + this.#timeoutMs }),
    });
    this.#ns = this.#client.namespace(prefix);
  }

  /**
   * Joins the cluster as `host`: takes (or finds again) the host's subnet from the pool, then puts its record under
   * a fresh lease, kept alive every TTL/3. CONFLICT when a live process already holds this id; EXHAUSTED when the
   * pool has no free subnet.
   */
  async register(host: HostInfo, options: RegisterOptions = {}): Promise<Membership> {
    const { ttlSeconds = 10, pool = '10.80.0.0/12', subnetPrefix = 24 } = options;
    if (!isHostId(host.id)) {
      throw new ClusterError(
        'INVALID_ARGUMENT',
        `host.id: ${JSON.stringify(host.id)} is not a host id: ${HOST_ID_RULE}`,
        { field: 'host.id' },
      );
    }
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 2 || ttlSeconds > 3_600) {
      throw new ClusterError('INVALID_ARGUMENT', 'ttlSeconds: a whole number of seconds from 2 to 3600', {
        field: 'ttlSeconds',
      });
    }
    const cidr = poolOf(pool, subnetPrefix);
    const subnet = await this.#call(() => this.#takeSubnet(host.id, cidr, subnetPrefix));
    const lease: Lease = this.#ns.lease(ttlSeconds);
    const lost = new AbortController();
    lease.on('lost', (error: unknown) => {
      lost.abort(
        new ClusterError('LEASE_LOST', `host ${host.id}: its cluster lease was lost`, { cause: error }),
      );
    });
    const record: HostRecord = {
      id: host.id,
      address: host.address,
      capacity: { cpus: host.capacity.cpus, memoryBytes: host.capacity.memoryBytes },
      labels: { ...host.labels },
      subnet,
      startedAt: new Date().toISOString(),
      ...(options.instance === undefined ? {} : { instance: options.instance }),
    };
    const key = `hosts/${host.id}`;
    let leaseId: string;
    try {
      leaseId = await this.#call(() => lease.grant());
      const { succeeded } = await this.#call(() =>
        this.#ns
          .if(key, 'Version', '==', 0)
          .then(this.#ns.put(key).value(JSON.stringify(record)).lease(leaseId))
          .commit(),
      );
      if (!succeeded && !(await this.#takeOver(key, record, leaseId))) {
        throw new ClusterError(
          'CONFLICT',
          `host ${host.id} is already live in the cluster (another process holds its lease)`,
          {
            field: 'host.id',
          },
        );
      }
    } catch (error) {
      await lease.revoke().catch(() => undefined);
      throw error;
    }
    const leave = async ({ revoke = true }: { revoke?: boolean } = {}) => {
      lease.removeAllListeners('lost');
      if (revoke) await lease.revoke().catch(() => undefined);
      else lease.release();
    };
    return { host: record, leaseId, lost: lost.signal, leave, [Symbol.asyncDispose]: () => leave() };
  }

  /** The live hosts (those whose lease holds), sorted by id, with their lease's time left. */
  async hosts(): Promise<LiveHost[]> {
    const kvs = await this.#call(() => this.#ns.getAll().prefix('hosts/').exec());
    const hosts = await Promise.all(
      kvs.kvs.map(async (kv: IKeyValue) => {
        const record = JSON.parse(kv.value.toString()) as HostRecord;
        const ttl = await this.#call(() => this.#client.leaseClient.leaseTimeToLive({ ID: kv.lease }));
        return { ...record, leaseId: String(kv.lease), leaseTtlSeconds: Number(ttl.TTL) };
      }),
    );
    return hosts.sort((a, b) => a.id.localeCompare(b.id));
  }

  /** The current revision of the store: where a watch that must miss nothing after a read starts (+1). */
  async revision(): Promise<number> {
    const answer = await this.#call(() => this.#ns.get('\0').exec());
    return Number(answer.header.revision);
  }

  /**
   * Changes under `prefix` (below the cluster prefix) from `fromRevision` on, until `signal` aborts. Resuming with
   * the last event's `modRevision + 1` misses nothing and repeats nothing.
   */
  async *watch(
    prefix: string,
    options: { fromRevision: number; signal: AbortSignal },
  ): AsyncIterable<ClusterEvent> {
    const { fromRevision, signal } = options;
    const queue: ClusterEvent[] = [];
    let wake: (() => void) | undefined;
    let failure: unknown;
    const watcher = await this.#call(() =>
      this.#ns.watch().prefix(prefix).startRevision(String(fromRevision)).create(),
    );
    const push = (type: ClusterEvent['type']) => (kv: IKeyValue) => {
      queue.push({
        type,
        key: kv.key.toString(),
        value: kv.value.toString(),
        modRevision: Number(kv.mod_revision),
      });
      wake?.();
    };
    watcher.on('put', push('put'));
    watcher.on('delete', push('delete'));
    watcher.on('error', (error: unknown) => {
      failure = error;
      wake?.();
    });
    const stop = () => wake?.();
    signal.addEventListener('abort', stop, { once: true });
    try {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (signal.aborted) return;
        if (failure) throw new ClusterError('UNAVAILABLE', 'the cluster watch failed', { cause: failure });
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      signal.removeEventListener('abort', stop);
      await watcher.cancel().catch(() => undefined);
    }
  }

  /**
   * Waits until this process leads `name` (etcd's election recipe; the leader's lease is this client's), or `signal`
   * aborts. Leadership ends with the connection; `signal` resigns it.
   */
  async campaign(name: string, value: string, signal: AbortSignal): Promise<void> {
    const campaign = this.#ns.election(`election/${name}`, 5).campaign(value);
    campaign.on('error', () => undefined);
    signal.addEventListener('abort', () => void campaign.resign().catch(() => undefined), { once: true });
    await Promise.race([
      campaign.wait(),
      new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true })),
    ]);
  }

  /** Every key under `prefix` (below the cluster prefix) at one revision, as puts, and that revision. */
  async list(prefix: string): Promise<{ revision: number; entries: ClusterEvent[] }> {
    const answer = await this.#call(() => this.#ns.getAll().prefix(prefix).exec());
    return {
      revision: Number(answer.header.revision),
      entries: answer.kvs.map((kv) => ({
        type: 'put' as const,
        key: kv.key.toString(),
        value: kv.value.toString(),
        modRevision: Number(kv.mod_revision),
      })),
    };
  }

  /**
   * Writes a VM's desired state; ALREADY_EXISTS (as CONFLICT) when the name is taken: of two clients creating one
   * name at once, exactly one wins.
   */
  async createVm(vm: ClusterVmSpec): Promise<void> {
    checkVmName(vm.name);
    const key = `vms/${vm.name}/spec`;
    const { succeeded } = await this.#call(() =>
      this.#ns
        .if(key, 'Version', '==', 0)
        .then(this.#ns.put(key).value(JSON.stringify(vm)))
        .commit(),
    );
    if (!succeeded)
      throw new ClusterError('CONFLICT', `a VM named ${vm.name} already exists in the cluster`, {
        field: 'name',
      });
  }

  /**
   * Removes a VM's desired state and its assignment (its host's agent then deletes it). False when it was unknown.
   * With `premise` (the revisions of a `vm()` read), only if neither its spec nor its status changed since: CONFLICT
   * otherwise, so a check made on that read (e.g. "not running") still holds when it goes.
   */
  async deleteVm(
    name: string,
    premise?: { readonly revision: number; readonly statusRevision: number },
  ): Promise<boolean> {
    checkVmName(name);
    if (!premise) {
      const answer = await this.#call(() => this.#ns.delete().prefix(`vms/${name}/`).exec());
      return Number(answer.deleted) > 0;
    }
    const { succeeded } = await this.#call(() =>
      this.#ns
        .if(`vms/${name}/spec`, 'Mod', '==', premise.revision)
        .and(`vms/${name}/status`, 'Mod', '==', premise.statusRevision)
        .then(this.#ns.delete().prefix(`vms/${name}/`))
        .commit(),
    );
    if (!succeeded) {
      throw new ClusterError('CONFLICT', `${name} changed since it was read (look again)`, { field: 'name' });
    }
    return true;
  }

  /** The cluster's VMs: desired state, assignment (if placed) and observed status (if reported), by name. */
  async vms(): Promise<ClusterVm[]> {
    const { entries } = await this.list('vms/');
    return vmsOf(entries);
  }

  /**
   * Assigns a VM to a host if nothing changed since the caller read it: its spec and assignment revisions are those
   * given and the host is live. False when a premise failed (the caller reads again).
   */
  async assign(
    name: string,
    assignment: Assignment,
    premise: { readonly specRevision: number; readonly assignmentRevision: number; readonly host: string },
  ): Promise<boolean> {
    const key = `vms/${name}/assignment`;
    const { succeeded } = await this.#call(() =>
      this.#ns
        .if(`vms/${name}/spec`, 'Mod', '==', premise.specRevision)
        .and(key, 'Mod', '==', premise.assignmentRevision)
        .and(`hosts/${premise.host}`, 'Version', '>', 0)
        .then(this.#ns.put(key).value(JSON.stringify(assignment)))
        .commit(),
    );
    return succeeded;
  }

  /**
   * Writes a VM's observed status, fenced: only while the VM's assignment is the one the agent acted on and the
   * host's record still holds the agent's lease. False when either changed.
   */
  async reportStatus(
    name: string,
    status: VmStatusRecord,
    premise: { readonly assignmentRevision: number; readonly leaseId: string },
  ): Promise<boolean> {
    const { succeeded } = await this.#call(() =>
      this.#ns
        .if(`vms/${name}/assignment`, 'Mod', '==', premise.assignmentRevision)
        .and(`hosts/${status.host}`, 'Lease', '==', premise.leaseId)
        .then(this.#ns.put(`vms/${name}/status`).value(JSON.stringify(status)))
        .commit(),
    );
    return succeeded;
  }

  /** One VM of the cluster, or undefined when there is none of that name. */
  async vm(name: string): Promise<ClusterVm | undefined> {
    checkVmName(name);
    const { entries } = await this.list(`vms/${name}/`);
    return vmsOf(entries)[0];
  }

  /**
   * Sets whether a VM should run (`running` of its desired state); its host's agent starts or stops it. A
   * read-modify-write conditioned on the spec's revision, retried when another writer came first. NOT_FOUND when
   * the cluster has no such VM.
   */
  async setRunning(name: string, running: boolean): Promise<ClusterVmSpec> {
    checkVmName(name);
    const key = `vms/${name}/spec`;
    for (let attempt = 0; ; attempt++) {
      const answer = await this.#call(() => this.#ns.getAll().prefix(key).exec());
      const kv = answer.kvs.find((entry) => entry.key.toString() === key);
      if (!kv) {
        throw new ClusterError('NOT_FOUND', `no VM named ${name} in the cluster`, { field: 'name' });
      }
      const spec = { ...(JSON.parse(kv.value.toString()) as ClusterVmSpec), running };
      const { succeeded } = await this.#call(() =>
        this.#ns
          .if(key, 'Mod', '==', kv.mod_revision)
          .then(this.#ns.put(key).value(JSON.stringify(spec)))
          .commit(),
      );
      if (succeeded) return spec;
      if (attempt >= 20) {
        throw new ClusterError('UNAVAILABLE', `${name}: its spec kept changing under this write`);
      }
    }
  }

  /** Closes the connection (a membership's lease then expires after its TTL). */
  close(): void {
    this.#client.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  /** The subnet this host holds, or the first free one of the pool, taken with a create-if-absent transaction. */
  async #takeSubnet(hostId: string, cidr: Ipv4Cidr, prefixLength: number): Promise<string> {
    const pool = `${cidr.network}/${cidr.prefixLength}`;
    const taken = await this.#ns.getAll().prefix('subnets/').strings();
    for (const [key, owner] of Object.entries(taken)) if (owner === hostId) return fromKey(key);
    const size = 2 ** (32 - prefixLength);
    const first = ipv4ToNumber(cidr.network);
    const count = 2 ** (prefixLength - cidr.prefixLength);
    for (let i = 0; i < count; i++) {
      const subnet = `${numberToIPv4(first + i * size)}/${prefixLength}`;
      const key = `subnets/${subnet.replace('/', '_')}`;
      if (key in taken) continue;
      const { succeeded } = await this.#ns
        .if(key, 'Version', '==', 0)
        .then(this.#ns.put(key).value(hostId))
        .commit();
      if (succeeded) return subnet;
    }
    throw new ClusterError('EXHAUSTED', `every /${prefixLength} of the pool ${pool} is taken`, {
      field: 'pool',
    });
  }

  /**
   * Takes over `key` when it holds an earlier incarnation of this host (the same `instance`): moves it to the new
   * lease if it did not change since it was read, then revokes the old lease. False when it is another's.
   */
  async #takeOver(key: string, record: HostRecord, leaseId: string): Promise<boolean> {
    if (record.instance === undefined) return false;
    const answer = await this.#call(() => this.#ns.getAll().prefix(key).exec());
    const kv = answer.kvs.find((entry) => entry.key.toString() === key);
    if (!kv || (JSON.parse(kv.value.toString()) as HostRecord).instance !== record.instance) return false;
    const { succeeded } = await this.#call(() =>
      this.#ns
        .if(key, 'Mod', '==', kv.mod_revision)
        .then(this.#ns.put(key).value(JSON.stringify(record)).lease(leaseId))
        .commit(),
    );
    if (succeeded) {
      await this.#client.leaseClient.leaseRevoke({ ID: kv.lease }).catch(() => undefined);
    }
    return succeeded;
  }

  async #call<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (ClusterError.isInstance(error)) throw error;
      throw new ClusterError('UNAVAILABLE', `etcd did not answer: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
}

/** The pool, checked: an IPv4 CIDR with room for subnets of `prefixLength`. */
function poolOf(pool: string, prefixLength: number): Ipv4Cidr {
  let cidr: Ipv4Cidr;
  try {
    cidr = parseIPv4Cidr(pool, 'pool');
  } catch (error) {
    throw new ClusterError('INVALID_ARGUMENT', `pool: ${JSON.stringify(pool)} is not an IPv4 CIDR`, {
      field: 'pool',
      cause: error,
    });
  }
  if (!Number.isInteger(prefixLength) || prefixLength < cidr.prefixLength || prefixLength > 30) {
    throw new ClusterError('INVALID_ARGUMENT', `subnetPrefix: /${prefixLength} does not fit in ${pool}`, {
      field: 'subnetPrefix',
    });
  }
  return cidr;
}

function checkVmName(name: string): void {
  // VM names follow the host-id rule, which is also vm-manager's rule for VM names.
  if (typeof name !== 'string' || !isHostId(name)) {
    throw new ClusterError('INVALID_ARGUMENT', `name: ${JSON.stringify(name)} is not a VM name`, {
      field: 'name',
    });
  }
}

/** The VMs among keys under `vms/`: those with a spec, by name. */
function vmsOf(entries: readonly ClusterEvent[]): ClusterVm[] {
  const byName = new Map<
    string,
    {
      spec?: ClusterVmSpec;
      revision: number;
      assignment?: Assignment;
      status?: VmStatusRecord;
      statusRevision: number;
    }
  >();
  for (const { key, value, modRevision } of entries) {
    const [, name, part] = key.split('/');
    if (!name || !part) continue;
    const vm = byName.get(name) ?? { revision: 0, statusRevision: 0 };
    byName.set(name, vm);
    if (part === 'spec') {
      vm.spec = JSON.parse(value) as ClusterVmSpec;
      vm.revision = modRevision;
    } else if (part === 'assignment') vm.assignment = JSON.parse(value) as Assignment;
    else if (part === 'status') {
      vm.status = JSON.parse(value) as VmStatusRecord;
      vm.statusRevision = modRevision;
    }
  }
  return [...byName]
    .filter(([, vm]) => vm.spec)
    .map(([name, vm]) => ({
      name,
      spec: vm.spec!,
      revision: vm.revision,
      statusRevision: vm.statusRevision,
      ...(vm.assignment ? { assignment: vm.assignment } : {}),
      ...(vm.status ? { status: vm.status } : {}),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

function fromKey(key: string): string {
  return key.slice('subnets/'.length).replace('_', '/');
}
