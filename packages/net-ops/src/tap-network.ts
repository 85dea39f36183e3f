import type { BridgeOps, BridgeSpec } from './bridge-ops.js';
import type { OperationOptions } from './capabilities.js';
import { DEFAULT_TAP_PREFIX, deriveMac, deriveTapName, formatKernelIpArg } from './derive.js';
import { invalidArgument, NetOpsError, throwIfAborted } from './errors.js';
import type { NatOps } from './nat-ops.js';
import type {
  NetworkBackend,
  VmNetworkAttachment,
  VmNetworkDetachRequest,
  VmNetworkDetachResult,
  VmNetworkRequest,
} from './network-backend.js';
import { isOpenPolicy, parseNetworkPolicy } from './network-policy.js';
import {
  type AddPortForwardResult,
  type PortForwardRule,
  parsePortForwardRule,
  type RemovePortForwardResult,
} from './port-forward.js';
import { raceSignal } from './race-signal.js';
import type { TapOps } from './tap-ops.js';
import {
  type Ipv4Cidr,
  ipv4InCidr,
  parseVmSubnet,
  type TapOwner,
  validateHostname,
  validateInterfaceName,
  validateIPv4,
  validateMac,
  validateMtu,
  validateTapOwner,
} from './validation.js';

/** An attach request after `TapNetwork.parseRequest`: validated, with the attachment it will give. */
export interface ParsedVmNetworkRequest {
  readonly vmId: string;
  readonly multiQueue: boolean;
  /** Who the TAP must be owned by; undefined: no owner asked for. */
  readonly tapOwner: TapOwner | undefined;
  /** The request's forwards, parsed, each with the VM's address. */
  readonly forwards: readonly PortForwardRule[];
  /** Everything of the attachment but `created` (and a backend's extras). */
  readonly attachment: Omit<VmNetworkAttachment, 'created'>;
}

/** The ops, bridge and subnet a `TapNetwork` attaches VMs with. */
export interface TapNetworkOptions {
  readonly bridge: BridgeOps;
  readonly tap: TapOps;
  readonly nat: NatOps;
  /** The host bridge VMs join, e.g. `myhvbr0`. */
  readonly bridgeName: string;
  /** The VM subnet, e.g. `10.62.0.0/24` (/8 to /30). */
  readonly subnet: string;
  /** MTU for the bridge and every TAP; the backend's default without it. */
  readonly mtu?: number;
  /** Prefix of derived TAP names (default `myhv`). */
  readonly tapPrefix?: string;
  /** The bridge's address inside the subnet; network + 1 by default. */
  readonly gateway?: string;
  /** Told about a failed undo step (attach rethrows the original error either way), e.g. to log it. */
  readonly onRollbackError?: (error: unknown, step: string) => void;
}

const maxVmIdLength = 256;

function requireOps(value: unknown, name: string, methods: readonly string[]): void {
  const ok =
    typeof value === 'object' &&
    value !== null &&
    methods.every((m) => typeof (value as Record<string, unknown>)[m] === 'function');
  if (!ok) throw new TypeError(`options.${name} must implement ${methods.join(', ')}`);
}

/** A VMM's uid/gid: 1 to 2³²-2 (root needs no owned TAP, and -1 means "unchanged" to the kernel). */
function parseTapOwner(value: unknown): TapOwner {
  const owner = validateTapOwner(value, 'tapOwner');
  if (owner.uid === 0)
    throw invalidArgument('tapOwner.uid', 'must not be 0: the TAP is for an unprivileged VMM');
  if (owner.gid === 0)
    throw invalidArgument('tapOwner.gid', 'must not be 0: the TAP is for an unprivileged VMM');
  return owner;
}

function validateVmId(vmId: unknown): string {
  if (typeof vmId !== 'string' || vmId.length === 0 || vmId.length > maxVmIdLength) {
    throw invalidArgument('vmId', `must be a string of 1 to ${maxVmIdLength} characters`);
  }
  // Ids end up in logs, state files and forward owners: control characters would corrupt them.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we reject
  if (/[\u0000-\u001f\u007f]/.test(vmId))
    throw invalidArgument('vmId', 'must not contain control characters');
  return vmId;
}

/**
 * The per-VM network as one bridge, one TAP per VM and host port forwards, composed from one BridgeOps, one TapOps
 * and one NatOps. It owns the order of the steps and undoes its own partial work: a TAP it created is deleted
 * again when a later step of the same attach fails; a TAP it adopted is left alone.
 */
export class TapNetwork implements NetworkBackend {
  readonly specificationVersion = 'v1' as const;
  readonly bridge: string;
  /** The subnet in canonical form (`network/prefix`). */
  readonly subnet: string;
  readonly gateway: string;
  readonly prefixLength: number;
  readonly netmask: string;
  readonly mtu: number | undefined;
  readonly tapPrefix: string;
  /** What `ensureBridge` asks the BridgeOps for: the gateway with its prefix, and the MTU. */
  readonly bridgeSpec: BridgeSpec;
  /** The TAP ops can give a TAP an owner, also an adopted one (`tapOwner` and `reownsTap`). */
  readonly setsTapOwner: boolean;
  /** The ops this network composes. */
  readonly ops: { readonly bridge: BridgeOps; readonly tap: TapOps; readonly nat: NatOps };

  readonly #cidr: Ipv4Cidr;
  readonly #onRollbackError: ((error: unknown, step: string) => void) | undefined;
  #bridgeReady: { promise: Promise<void>; signal: AbortSignal | undefined } | undefined;

  constructor(options: TapNetworkOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    requireOps(options.bridge, 'bridge', ['ensureBridge', 'listBridgePorts']);
    requireOps(options.tap, 'tap', ['createTap', 'addToBridge', 'bringUp', 'deleteTap']);
    requireOps(options.nat, 'nat', ['addPortForward', 'removePortForward', 'listPortForwards']);
    this.ops = Object.freeze({ bridge: options.bridge, tap: options.tap, nat: options.nat });
    const tapCapabilities = options.tap.capabilities;
    this.setsTapOwner = tapCapabilities?.tapOwner === true && tapCapabilities.reownsTap === true;
    this.bridge = validateInterfaceName(options.bridgeName, 'bridgeName');
    const cidr = parseVmSubnet(options.subnet, 'subnet');
    this.#cidr = cidr;
    this.subnet = `${cidr.network}/${cidr.prefixLength}`;
    this.prefixLength = cidr.prefixLength;
    this.netmask = cidr.netmask;
    this.gateway = cidr.gateway;
    if (options.gateway !== undefined) {
      const gateway = validateIPv4(options.gateway, 'gateway');
      if (!this.#isHostAddress(gateway))
        throw invalidArgument('gateway', `${gateway} is not a host address of ${this.subnet}`);
      this.gateway = gateway;
    }
    this.mtu = options.mtu === undefined ? undefined : validateMtu(options.mtu, 'mtu');
    this.tapPrefix = options.tapPrefix ?? DEFAULT_TAP_PREFIX;
    deriveTapName('probe', this.tapPrefix); // validates the prefix now rather than on the first attach
    this.bridgeSpec = Object.freeze({
      name: this.bridge,
      address: `${this.gateway}/${this.prefixLength}`,
      ...(this.mtu === undefined ? {} : { mtu: this.mtu }),
    });
    this.#onRollbackError = options.onRollbackError;
  }

  /**
   * Ensures the bridge once per instance. Concurrent callers share one request; a failed one is retried by the
   * next call; one caller's abort does not fail the others.
   */
  async ensureBridge(options?: OperationOptions): Promise<void> {
    const signal = options?.signal;
    throwIfAborted(signal);
    for (;;) {
      let shared = this.#bridgeReady;
      if (!shared) {
        const promise = this.ops.bridge
          .ensureBridge(this.bridgeSpec, signal ? { signal } : undefined)
          .then(() => {});
        shared = { promise, signal };
        const current = shared;
        this.#bridgeReady = current;
        promise.catch(() => {
          if (this.#bridgeReady === current) this.#bridgeReady = undefined;
        });
      }
      try {
        await raceSignal(shared.promise, signal);
        return;
      } catch (error) {
        // Another caller's signal cancelled the shared request: ours is still live, so try again.
        const othersAbort = shared.signal !== signal && shared.signal?.aborted === true && !signal?.aborted;
        if (!othersAbort) throw error;
      }
    }
  }

  /** Creates (or adopts) the TAP on the bridge, up; undoes its own partial work. True when it created it. */
  async #plugTap(
    tap: string,
    multiQueue: boolean,
    owner: TapOwner | undefined,
    options: OperationOptions | undefined,
  ): Promise<boolean> {
    const extra = { ...(this.mtu === undefined ? {} : { mtu: this.mtu }), ...(owner ? { owner } : {}) };
    // With `bridge`, every v1 backend leaves the TAP attached and up (and no TAP it created behind on failure):
    // one call, which a backend can do in one step (LocalOps: one `ip` run for a TAP that is already as wanted).
    return (await this.ops.tap.createTap({ name: tap, multiQueue, bridge: this.bridge, ...extra }, options))
      .created;
  }

  /**
   * Validates an attach request (INVALID_ARGUMENT naming the field; nothing runs) and derives what it leaves
   * implicit: the TAP name, the MAC, and the attachment the VM will get. For backends built on this one.
   */
  parseRequest(vm: VmNetworkRequest): ParsedVmNetworkRequest {
    if (typeof vm !== 'object' || vm === null) throw new TypeError('vm must be an object');
    const vmId = validateVmId(vm.vmId);
    const ipv4 = this.validateGuestIp(vm.ipv4, 'ipv4');
    const tap =
      vm.tap === undefined ? deriveTapName(vmId, this.tapPrefix) : validateInterfaceName(vm.tap, 'tap');
    const mac = vm.mac === undefined ? deriveMac(vmId) : validateMac(vm.mac, 'mac');
    if (vm.multiQueue !== undefined && typeof vm.multiQueue !== 'boolean')
      throw invalidArgument('multiQueue', 'must be a boolean');
    const hostname = vm.hostname === undefined ? undefined : validateHostname(vm.hostname, 'hostname');
    const tapOwner = vm.tapOwner === undefined ? undefined : parseTapOwner(vm.tapOwner);
    const forwards = this.#validateForwards(vm.forwards, ipv4);
    const kernelIpArg = formatKernelIpArg({
      ipv4,
      gateway: this.gateway,
      netmask: this.netmask,
      ...(hostname === undefined ? {} : { hostname }),
    });
    return {
      vmId,
      multiQueue: vm.multiQueue ?? false,
      tapOwner,
      forwards,
      attachment: {
        tap,
        mac,
        bridge: this.bridge,
        ipv4,
        gateway: this.gateway,
        prefixLength: this.prefixLength,
        netmask: this.netmask,
        kernelIpArg,
      },
    };
  }

  async attach(vm: VmNetworkRequest, options?: OperationOptions): Promise<VmNetworkAttachment> {
    const signal = options?.signal;
    throwIfAborted(signal);
    const { multiQueue, tapOwner, forwards, attachment } = this.parseRequest(vm);
    const { tap } = attachment;
    if (tapOwner && !this.setsTapOwner) {
      throw new NetOpsError(
        'UNSUPPORTED',
        'these TAP ops cannot make sure the TAP is owned by the VMM (capabilities tapOwner and reownsTap)',
        { details: { field: 'tapOwner' } },
      );
    }
    if (vm.policy !== undefined && !isOpenPolicy(parseNetworkPolicy(vm.policy))) {
      // One bridge for all: nothing here could keep VMs apart or hold the guest to an egress policy.
      throw new NetOpsError(
        'UNSUPPORTED',
        'a TAP on a shared bridge cannot isolate a VM or restrict its egress; use the namespace backend',
        { details: { field: 'policy' } },
      );
    }

    await this.ensureBridge(options);
    let created: boolean;
    try {
      created = await this.#plugTap(tap, multiQueue, tapOwner, options);
    } catch (error) {
      // The bridge this instance made earlier is gone (a reboot, someone deleting it): make it again, once.
      if (!(NetOpsError.isInstance(error) && error.code === 'NOT_FOUND')) throw error;
      this.#bridgeReady = undefined;
      await this.ensureBridge(options);
      created = await this.#plugTap(tap, multiQueue, tapOwner, options);
    }
    const added: PortForwardRule[] = [];
    try {
      for (const rule of forwards) {
        if ((await this.ops.nat.addPortForward(rule, options)).created) added.push(rule);
      }
    } catch (error) {
      for (const rule of added.reverse()) {
        await this.#undo(`removePortForward ${rule.protocol}/${rule.hostPort}`, () =>
          this.ops.nat.removePortForward(rule),
        );
      }
      if (created) await this.#undo(`deleteTap ${tap}`, () => this.ops.tap.deleteTap(tap));
      throw error;
    }
    return { ...attachment, created };
  }

  async detach(vm: VmNetworkDetachRequest, options?: OperationOptions): Promise<VmNetworkDetachResult> {
    throwIfAborted(options?.signal);
    if (typeof vm !== 'object' || vm === null) throw new TypeError('vm must be an object');
    const vmId = validateVmId(vm.vmId);
    const tap =
      vm.tap === undefined ? deriveTapName(vmId, this.tapPrefix) : validateInterfaceName(vm.tap, 'tap');
    const forwards = this.#validateForwards(vm.forwards, undefined);
    for (const rule of forwards) await this.ops.nat.removePortForward(rule, options);
    const { existed } = await this.ops.tap.deleteTap(tap, options);
    return { tap, existed };
  }

  async addForward(rule: PortForwardRule, options?: OperationOptions): Promise<AddPortForwardResult> {
    throwIfAborted(options?.signal);
    const parsed = this.#parseForward(rule, 'rule', undefined);
    // Backends may tie their NAT structure to the bridge (masquerade for the subnet), so it must exist first.
    await this.ensureBridge(options);
    return this.ops.nat.addPortForward(parsed, options);
  }

  async removeForward(rule: PortForwardRule, options?: OperationOptions): Promise<RemovePortForwardResult> {
    throwIfAborted(options?.signal);
    const parsed = this.#parseForward(rule, 'rule', undefined);
    return this.ops.nat.removePortForward(parsed, options);
  }

  #isHostAddress(address: string): boolean {
    return (
      ipv4InCidr(address, this.#cidr) && address !== this.#cidr.network && address !== this.#cidr.broadcast
    );
  }

  /** `value` as a guest address of the subnet (not the network, gateway or broadcast); INVALID_ARGUMENT naming `field`. */
  validateGuestIp(value: unknown, field: string): string {
    const address = validateIPv4(value, field);
    if (!this.#isHostAddress(address) || address === this.gateway) {
      throw invalidArgument(
        field,
        `${address} is not a guest address of ${this.subnet} (not the network, gateway ${this.gateway} or broadcast)`,
      );
    }
    return address;
  }

  #parseForward(rule: unknown, field: string, guestIp: string | undefined): PortForwardRule {
    const parsed = parsePortForwardRule(rule, field);
    this.validateGuestIp(parsed.guestIp, `${field}.guestIp`);
    if (guestIp !== undefined && parsed.guestIp !== guestIp)
      throw invalidArgument(`${field}.guestIp`, `must be the VM's address ${guestIp}`);
    return parsed;
  }

  #validateForwards(forwards: unknown, guestIp: string | undefined): PortForwardRule[] {
    if (forwards === undefined) return [];
    if (!Array.isArray(forwards)) throw invalidArgument('forwards', 'must be an array of port-forward rules');
    return forwards.map((rule, i) => this.#parseForward(rule, `forwards.${i}`, guestIp));
  }

  /** One undo step: runs without the caller's signal (an aborted attach must still clean up). */
  async #undo(step: string, run: () => Promise<unknown>): Promise<void> {
    try {
      await run();
    } catch (error) {
      this.#onRollbackError?.(
        NetOpsError.isInstance(error) ? error : new NetOpsError('BACKEND_FAILURE', step, { cause: error }),
        step,
      );
    }
  }
}
