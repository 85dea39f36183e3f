import type { BridgeOps, BridgePort, BridgeSpec, EnsureBridgeResult } from './bridge-ops.js';
import type { NetOpsCapabilities, OperationOptions } from './capabilities.js';
import { abortError, invalidArgument, NetOpsError, throwIfAborted } from './errors.js';
import type { NatOps } from './nat-ops.js';
import {
  type AddPortForwardResult,
  type PortForwardRule,
  parsePortForwardRule,
  portForwardKey,
  type RemovePortForwardResult,
  samePortForward,
} from './port-forward.js';
import type { CreateTapResult, DeleteTapResult, TapOps, TapSpec } from './tap-ops.js';
import {
  parseIPv4Cidr,
  parseIPv6Cidr,
  validateInterfaceName,
  validateMtu,
  validateTapOwner,
} from './validation.js';

/** The operations of the three contracts, as `failOn` and the call log name them. */
export type MemoryNetOpsOperation =
  | 'ensureBridge'
  | 'listBridgePorts'
  | 'createTap'
  | 'addToBridge'
  | 'bringUp'
  | 'deleteTap'
  | 'addPortForward'
  | 'removePortForward'
  | 'listPortForwards';

/** One call the in-memory ops received: the operation and its arguments. */
export interface MemoryNetOpsCall {
  readonly operation: MemoryNetOpsOperation;
  /** The arguments as given, without the options. */
  readonly args: readonly unknown[];
}

/** How the in-memory ops behave: atomic TAP creation, capabilities, injected failures and delays. */
export interface MemoryNetOpsOptions {
  /** Behave like a daemon whose `createTap` attaches and brings up in one step (and requires `bridge`). */
  readonly atomicTap?: boolean;
  /** Override single capabilities, e.g. `{ listPortForwards: false }` to exercise a caller's UNSUPPORTED branch. */
  readonly capabilities?: Partial<NetOpsCapabilities>;
  /**
   * Called for every operation after its input was validated and before anything changes; an error it returns is
   * thrown instead and nothing changes. Lets tests make one step of a composition fail.
   */
  readonly failOn?: (operation: MemoryNetOpsOperation, args: readonly unknown[]) => Error | undefined;
  /** Wait this long (abortably) inside every operation before acting, like a slow backend. Default 0. */
  readonly delayMs?: number;
}

/** A bridge as the in-memory ops hold it. */
export interface MemoryBridgeState {
  readonly name: string;
  readonly address: string;
  readonly mtu?: number;
  readonly ipv6Address?: string;
  /** Attached interfaces, in the order they joined. */
  readonly ports: readonly string[];
}

/** A TAP as the in-memory ops hold it. */
export interface MemoryTapState {
  readonly name: string;
  readonly multiQueue: boolean;
  readonly mtu?: number;
  readonly owner?: { readonly uid: number; readonly gid: number };
  readonly bridge?: string;
  readonly up: boolean;
}

/** A deep copy of everything the memory backend holds, for assertions. */
export interface MemoryNetOpsSnapshot {
  readonly bridges: readonly MemoryBridgeState[];
  readonly taps: readonly MemoryTapState[];
  readonly forwards: readonly PortForwardRule[];
}

/** All three contracts over one in-memory host, plus inspection for tests. */
export interface MemoryNetOps extends BridgeOps, TapOps, NatOps {
  readonly specificationVersion: 'v1';
  readonly capabilities: NetOpsCapabilities;
  /** What the host holds now. */
  snapshot(): MemoryNetOpsSnapshot;
  /** Forgets every bridge, TAP and forward, as a host reboot does (calls are kept). For tests of recovery. */
  reboot(): void;
  /** Every call made so far, in order, including those that failed. */
  readonly calls: readonly MemoryNetOpsCall[];
}

interface Bridge {
  name: string;
  address: string;
  mtu?: number;
  ipv6Address?: string;
}

interface Tap {
  name: string;
  multiQueue: boolean;
  mtu?: number;
  owner?: { uid: number; gid: number };
  bridge?: string;
  up: boolean;
}

function abortableDelay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function requireObject(value: unknown, what: string): void {
  if (typeof value !== 'object' || value === null) throw new TypeError(`${what} must be an object`);
}

function notFound(message: string): NetOpsError {
  return new NetOpsError('NOT_FOUND', message);
}

function conflict(message: string): NetOpsError {
  return new NetOpsError('CONFLICT', message);
}

function unsupported(message: string): NetOpsError {
  return new NetOpsError('UNSUPPORTED', message);
}

/**
 * An in-memory host with the semantics a kernel has: bridges and TAPs share one name space of 15-byte names, a TAP
 * must exist before it joins a bridge, deleting a TAP takes it off its bridge, one forward per protocol and host
 * port. Every operation checks its signal first, validates its input, and then changes state in one step, so
 * concurrent calls behave like the kernel's serialised netlink requests. Capabilities are all on except
 * `atomicTap` (see the options).
 */
export function createMemoryNetOps(options: MemoryNetOpsOptions = {}): MemoryNetOps {
  const atomicTap = options.atomicTap ?? false;
  const capabilities: NetOpsCapabilities = Object.freeze({
    listBridgePorts: true,
    listPortForwards: true,
    multiQueue: true,
    tapOwner: true,
    reownsTap: true,
    ipv6: true,
    ...options.capabilities,
    atomicTap: options.capabilities?.atomicTap ?? atomicTap,
  });
  const delayMs = options.delayMs ?? 0;
  const bridges = new Map<string, Bridge>();
  const taps = new Map<string, Tap>();
  const forwards = new Map<string, PortForwardRule>();
  const calls: MemoryNetOpsCall[] = [];

  /** The shared prologue: log, honour the signal, validate, inject, wait; then the caller acts in one step. */
  async function begin<T>(
    operation: MemoryNetOpsOperation,
    args: readonly unknown[],
    opOptions: OperationOptions | undefined,
    validate: () => T,
  ): Promise<T> {
    calls.push({ operation, args });
    const signal = opOptions?.signal;
    throwIfAborted(signal);
    const input = validate();
    const injected = options.failOn?.(operation, args);
    if (injected) throw injected;
    // Always yield once so calls issued together interleave as they would against a real backend.
    if (delayMs > 0) await abortableDelay(delayMs, signal);
    else await Promise.resolve();
    throwIfAborted(signal);
    return input;
  }

  function portsOf(bridge: string): string[] {
    return [...taps.values()].filter((tap) => tap.bridge === bridge).map((tap) => tap.name);
  }

  function attach(tap: Tap, bridge: Bridge): void {
    // Like `ip link set … mtu` before `master`: the TAP takes the bridge's explicit MTU so the bridge keeps it.
    if (bridge.mtu !== undefined) tap.mtu = bridge.mtu;
    // Re-attaching moves the TAP to the end of the port list, as `ip link set master` does for a new master.
    taps.delete(tap.name);
    tap.bridge = bridge.name;
    taps.set(tap.name, tap);
  }

  const ops: MemoryNetOps = {
    specificationVersion: 'v1',
    capabilities,

    get calls() {
      return calls.slice();
    },

    reboot() {
      bridges.clear();
      taps.clear();
      forwards.clear();
    },
    snapshot() {
      return {
        bridges: [...bridges.values()].map((b) => ({ ...b, ports: portsOf(b.name) })),
        taps: [...taps.values()].map((t) => ({ ...t, ...(t.owner ? { owner: { ...t.owner } } : {}) })),
        forwards: [...forwards.values()].map((f) => ({ ...f })),
      };
    },

    async ensureBridge(spec: BridgeSpec, opOptions?: OperationOptions): Promise<EnsureBridgeResult> {
      const input = await begin('ensureBridge', [spec], opOptions, () => {
        requireObject(spec, 'spec');
        const name = validateInterfaceName(spec.name, 'name');
        parseIPv4Cidr(spec.address, 'address');
        const mtu = spec.mtu === undefined ? undefined : validateMtu(spec.mtu, 'mtu');
        let ipv6Address: string | undefined;
        if (spec.ipv6Address !== undefined) {
          const cidr = parseIPv6Cidr(spec.ipv6Address, 'ipv6Address');
          if (!capabilities.ipv6) throw unsupported('this backend does not put IPv6 addresses on bridges');
          ipv6Address = `${cidr.address}/${cidr.prefixLength}`;
        }
        return { name, address: spec.address, mtu, ipv6Address };
      });
      if (taps.has(input.name)) throw conflict(`${input.name} exists and is a TAP, not a bridge`);
      const existing = bridges.get(input.name);
      const bridge: Bridge = { name: input.name, address: input.address };
      if (input.mtu !== undefined) bridge.mtu = input.mtu;
      else if (existing?.mtu !== undefined) bridge.mtu = existing.mtu;
      const ipv6Address = input.ipv6Address ?? existing?.ipv6Address;
      if (ipv6Address !== undefined) bridge.ipv6Address = ipv6Address;
      bridges.set(input.name, bridge);
      return { name: input.name, created: existing === undefined };
    },

    async listBridgePorts(bridge: string, opOptions?: OperationOptions): Promise<BridgePort[]> {
      const name = await begin('listBridgePorts', [bridge], opOptions, () => {
        const name = validateInterfaceName(bridge, 'bridge');
        if (!capabilities.listBridgePorts) throw unsupported('this backend cannot list bridge ports');
        return name;
      });
      if (!bridges.has(name)) throw notFound(`no bridge named ${name}`);
      return portsOf(name).map((port) => ({ name: port }));
    },

    async createTap(spec: TapSpec, opOptions?: OperationOptions): Promise<CreateTapResult> {
      const input = await begin('createTap', [spec], opOptions, () => {
        requireObject(spec, 'spec');
        const name = validateInterfaceName(spec.name, 'name');
        const mtu = spec.mtu === undefined ? undefined : validateMtu(spec.mtu, 'mtu');
        if (spec.multiQueue !== undefined && typeof spec.multiQueue !== 'boolean')
          throw invalidArgument('multiQueue', 'must be a boolean');
        const multiQueue = spec.multiQueue ?? false;
        const owner = spec.owner === undefined ? undefined : { ...validateTapOwner(spec.owner) };
        const bridge = spec.bridge === undefined ? undefined : validateInterfaceName(spec.bridge, 'bridge');
        if (multiQueue && !capabilities.multiQueue)
          throw unsupported('this backend cannot create multi-queue TAPs');
        if (owner && !capabilities.tapOwner) throw unsupported('this backend cannot restrict TAP owners');
        if (capabilities.atomicTap && bridge === undefined)
          throw invalidArgument('bridge', 'is required by a backend that creates TAPs attached (atomicTap)');
        return { name, mtu, multiQueue, owner, bridge };
      });
      const bridge = input.bridge === undefined ? undefined : bridges.get(input.bridge);
      if (input.bridge !== undefined && !bridge) throw notFound(`no bridge named ${input.bridge}`);
      if (bridges.has(input.name)) throw conflict(`${input.name} exists and is a bridge, not a TAP`);
      const existing = taps.get(input.name);
      if (existing && existing.multiQueue !== input.multiQueue) {
        throw conflict(
          `${input.name} exists as a ${existing.multiQueue ? 'multi-queue' : 'single-queue'} TAP`,
        );
      }
      const tap: Tap = existing ?? { name: input.name, multiQueue: input.multiQueue, up: false };
      if (input.mtu !== undefined) tap.mtu = input.mtu;
      if (input.owner && (!existing || capabilities.reownsTap)) tap.owner = input.owner;
      if (!existing) taps.set(tap.name, tap);
      if (bridge) {
        attach(tap, bridge);
        tap.up = true;
      }
      return { name: input.name, created: existing === undefined };
    },

    async addToBridge(tap: string, bridge: string, opOptions?: OperationOptions): Promise<void> {
      const input = await begin('addToBridge', [tap, bridge], opOptions, () => ({
        tap: validateInterfaceName(tap, 'tap'),
        bridge: validateInterfaceName(bridge, 'bridge'),
      }));
      const device = taps.get(input.tap);
      if (!device) throw notFound(`no TAP named ${input.tap}`);
      const master = bridges.get(input.bridge);
      if (!master) throw notFound(`no bridge named ${input.bridge}`);
      if (device.bridge !== master.name) attach(device, master);
    },

    async bringUp(tap: string, opOptions?: OperationOptions): Promise<void> {
      const name = await begin('bringUp', [tap], opOptions, () => validateInterfaceName(tap, 'tap'));
      const device = taps.get(name);
      if (!device) throw notFound(`no TAP named ${name}`);
      device.up = true;
    },

    async deleteTap(name: string, opOptions?: OperationOptions): Promise<DeleteTapResult> {
      const tap = await begin('deleteTap', [name], opOptions, () => validateInterfaceName(name, 'name'));
      if (bridges.has(tap)) throw conflict(`${tap} is a bridge, not a TAP`);
      return { name: tap, existed: taps.delete(tap) };
    },

    async addPortForward(rule: PortForwardRule, opOptions?: OperationOptions): Promise<AddPortForwardResult> {
      const parsed = await begin('addPortForward', [rule], opOptions, () => parsePortForwardRule(rule));
      const key = portForwardKey(parsed);
      const existing = forwards.get(key);
      if (existing) {
        if (samePortForward(existing, parsed)) return { created: false };
        throw conflict(`${key} already forwards to ${existing.guestIp}:${existing.guestPort}`);
      }
      forwards.set(key, parsed);
      return { created: true };
    },

    async removePortForward(
      rule: PortForwardRule,
      opOptions?: OperationOptions,
    ): Promise<RemovePortForwardResult> {
      const parsed = await begin('removePortForward', [rule], opOptions, () => parsePortForwardRule(rule));
      const key = portForwardKey(parsed);
      const existing = forwards.get(key);
      if (!existing) return { existed: false };
      if (!samePortForward(existing, parsed)) {
        throw conflict(
          `${key} forwards to ${existing.guestIp}:${existing.guestPort}, not to this rule's target`,
        );
      }
      forwards.delete(key);
      return { existed: true };
    },

    async listPortForwards(opOptions?: OperationOptions): Promise<PortForwardRule[]> {
      await begin('listPortForwards', [], opOptions, () => {
        if (!capabilities.listPortForwards) throw unsupported('this backend cannot list port forwards');
      });
      return [...forwards.values()].map((f) => ({ ...f }));
    },
  };
  return ops;
}
