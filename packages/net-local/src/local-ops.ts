import {
  type AddPortForwardResult,
  type BridgeOps,
  type BridgePort,
  type BridgeSpec,
  type CreateTapResult,
  type DeleteTapResult,
  type EnsureBridgeResult,
  type NatOps,
  type NetOpsCapabilities,
  NetOpsError,
  type OperationOptions,
  type PortForwardRule,
  parseIPv4Cidr,
  parsePortForwardRule,
  type RemovePortForwardResult,
  type TapOps,
  type TapSpec,
  throwIfAborted,
  validateInterfaceName,
} from '@my-hypervisor/net-ops';
import { commandError } from './command-error.js';
import { HostCommands } from './host-commands.js';
import { IpBatcher, type IpLine, type IpLineResult } from './ip-batcher.js';
import { isTap, type LinkInfo, parseIpJson, parseLink, parseLinks } from './ip-link.js';
import { iptablesNames } from './iptables-model.js';
import { IptablesNat } from './iptables-nat.js';
import { KeyedLock } from './keyed-lock.js';
import { type LocalOpsOptions, resolveLocalOpsOptions } from './local-ops-options.js';
import type { NatDriver } from './nat-driver.js';
import { NftNat } from './nft-nat.js';
import { type BridgeInput, parseBridgeSpec, parseTapSpec, signalOf, type TapInput } from './ops-input.js';
import { Sysctl, type SysctlKey } from './sysctl.js';
import { readTapOwner, sameOwner } from './tap-owner.js';

/** What LocalOps can do: everything but `atomicTap` (a TAP is created, attached and brought up in separate steps). */
export const localOpsCapabilities: NetOpsCapabilities = Object.freeze({
  listBridgePorts: true,
  listPortForwards: true,
  atomicTap: false,
  multiQueue: true,
  tapOwner: true,
  reownsTap: true,
  ipv6: true,
});

/** The MTU the kernel gives a new TAP (ether_setup): setting it again would be a wasted command. */
const DEFAULT_TAP_MTU = 1500;

function conflict(message: string): NetOpsError {
  return new NetOpsError('CONFLICT', message);
}

/** The first failed line's error, thrown; the results otherwise. */
function orThrow(results: IpLineResult[]): IpLineResult[] {
  for (const result of results) if (!result.ok) throw result.error;
  return results;
}

/**
 * `BridgeOps`, `TapOps` and `NatOps` on the local kernel through `ip`, `nft` and `iptables` (argv arrays, never a
 * shell). Operations issued in the same tick share processes: every `ip` command of a wave goes into one
 * `ip -force -batch -`, every nft change into one `nft -f -` transaction, every iptables change into one
 * `iptables-restore --noflush`, and each failure goes back to the operation whose line caused it.
 *
 * An aborted signal stops an operation until its first change has started; from then on it runs to completion
 * (its process carries other callers' work too), and `commandTimeoutMs` bounds every process.
 */
export class LocalOps implements BridgeOps, TapOps, NatOps, AsyncDisposable {
  readonly specificationVersion = 'v1' as const;
  readonly capabilities: NetOpsCapabilities = localOpsCapabilities;
  /** The network namespace everything runs in; undefined for the host's own. */
  readonly netns: string | undefined;
  /** The NAT driver in use. */
  readonly natDriver: 'nft' | 'iptables';

  readonly #ip: IpBatcher;
  readonly #host: HostCommands;
  readonly #sysctl: Sysctl;
  readonly #nat: NatDriver;
  readonly #bridgeLocks = new KeyedLock();
  /** Bridge MTUs this instance set explicitly: a TAP joining one takes it without reading it first. */
  readonly #bridgeMtus = new Map<string, number>();
  readonly #running = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;

  constructor(options: LocalOpsOptions = {}) {
    const resolved = resolveLocalOpsOptions(options);
    this.netns = resolved.netns;
    this.natDriver = resolved.nat;
    this.#host = new HostCommands({
      ...(resolved.netns === undefined ? {} : { netns: resolved.netns }),
      runner: resolved.runner,
      timeoutMs: resolved.commandTimeoutMs,
    });
    this.#ip = new IpBatcher(this.#host);
    this.#sysctl = new Sysctl(this.#host);
    const names = iptablesNames(resolved.chainPrefix);
    this.#nat =
      resolved.nat === 'nft'
        ? new NftNat(this.#host, { table: resolved.tableName, iptables: names })
        : new IptablesNat(this.#host, names);
  }

  /**
   * Creates the bridge if missing, replaces other IPv4 (and, with `ipv6Address`, other global IPv6) addresses with
   * the given one, sets the MTU and brings it up; sets `net.ipv4.ip_forward` only if it is 0 and `route_localnet` on
   * the bridge; registers the bridge and its subnet with the NAT driver. Calls for one name run one at a time.
   */
  async ensureBridge(spec: BridgeSpec, options?: OperationOptions): Promise<EnsureBridgeResult> {
    const input = parseBridgeSpec(spec);
    return this.#run(options, (signal) =>
      this.#bridgeLocks.run(input.name, () => this.#ensureBridge(input, signal)),
    );
  }

  async #ensureBridge(
    input: BridgeInput,
    signal: AbortSignal | undefined,
    attempt = 0,
  ): Promise<EnsureBridgeResult> {
    const { name } = input;
    const forwardingKey = 'net/ipv4/ip_forward';
    const localnetKey = `net/ipv4/conf/${name}/route_localnet`;
    const ipv6ForwardingKey = 'net/ipv6/conf/all/forwarding';
    const keys: SysctlKey[] = [forwardingKey, localnetKey, ...(input.ipv6 ? [ipv6ForwardingKey] : [])];
    const [[shown], sysctls] = await Promise.all([
      this.#ip.run([{ text: `addr show dev ${name}`, read: true }], signal),
      this.#sysctl.read(keys, signal),
    ]);
    let link: LinkInfo | undefined;
    if (shown!.ok) link = parseLink(shown!.output, name);
    else if (shown!.error.code !== 'NOT_FOUND') throw shown!.error;
    if (link && link.kind !== 'bridge') {
      throw conflict(`${name} exists and is ${link.kind ? `a ${link.kind} device` : 'not a bridge'}`);
    }
    // The last point at which nothing has changed.
    throwIfAborted(signal);

    const lines: string[] = [];
    if (!link) lines.push(`link add name ${name} type bridge`);
    if (input.mtu !== undefined && link?.mtu !== input.mtu)
      lines.push(`link set dev ${name} mtu ${input.mtu}`);
    const { address } = input;
    const ipv4 = link?.addresses.filter((a) => a.family === 'inet') ?? [];
    const staleIpv4 = ipv4.filter(
      (a) => a.local !== address.address || a.prefixLength !== address.prefixLength,
    );
    for (const a of staleIpv4) lines.push(`addr del ${a.local}/${a.prefixLength} dev ${name}`);
    if (staleIpv4.length === ipv4.length)
      lines.push(`addr replace ${address.address}/${address.prefixLength} dev ${name}`);
    if (input.ipv6) {
      const { address: v6, prefixLength } = input.ipv6;
      const global = link?.addresses.filter((a) => a.family === 'inet6' && a.scope === 'global') ?? [];
      const stale = global.filter((a) => a.local !== v6 || a.prefixLength !== prefixLength);
      for (const a of stale) lines.push(`addr del ${a.local}/${a.prefixLength} dev ${name}`);
      if (stale.length === global.length) lines.push(`addr replace ${v6}/${prefixLength} dev ${name}`);
    }
    if (!link?.up) lines.push(`link set dev ${name} up`);

    if (lines.length > 0) {
      const results = await this.#ip.run(lines.map((text) => ({ text })));
      const first = results[0];
      if (!link && first && !first.ok && first.error.code === 'ALREADY_EXISTS' && attempt < 3) {
        // Another process (another myhv, say) created the bridge between our look and our add: it is not ours to
        // delete. Look again and bring the bridge it made to the spec.
        return this.#ensureBridge(input, signal, attempt + 1);
      }
      try {
        orThrow(results);
      } catch (error) {
        // Only a bridge this call created is removed again.
        if (!link && first?.ok) await this.#deleteQuietly(name);
        throw error;
      }
    }

    const settings = new Map<SysctlKey, string>();
    if (sysctls.get(forwardingKey) === '0') settings.set(forwardingKey, '1');
    if (sysctls.get(localnetKey) !== '1') settings.set(localnetKey, '1');
    if (input.ipv6 && sysctls.get(ipv6ForwardingKey) === '0') settings.set(ipv6ForwardingKey, '1');
    const staleSubnets = staleIpv4.map((a) => parseIPv4Cidr(`${a.local}/${a.prefixLength}`));
    await Promise.all([
      this.#sysctl.write(settings),
      this.#nat.prepareBridge({ bridge: name, subnet: address, staleSubnets }),
    ]);
    if (input.mtu !== undefined) this.#bridgeMtus.set(name, input.mtu);
    else this.#bridgeMtus.delete(name);
    return { name, created: !link };
  }

  /** The interfaces enslaved to `bridge` (`ip -json -details link show master BRIDGE`). */
  async listBridgePorts(bridge: string, options?: OperationOptions): Promise<BridgePort[]> {
    const name = validateInterfaceName(bridge, 'bridge');
    return this.#run(options, async (signal) => {
      // Not batched: `ip` resolves `master NAME` while parsing and would end a whole batch if it is missing.
      const outcome = await this.#host.run(
        'ip',
        ['-json', '-details', 'link', 'show', 'master', name],
        signal ? { signal } : {},
      );
      if (outcome.exitCode !== 0) throw commandError(this.#host.failure(outcome));
      return parseLinks(parseIpJson(outcome.stdout))
        .filter((link) => link.master === name)
        .map((link) => ({ name: link.name }));
    });
  }

  /**
   * `ip tuntap add dev NAME mode tap [multi_queue] [user U group G]`. An existing TAP of the same queue mode is
   * adopted (with `owner`, one of another owner is deleted and made again); anything else of that name is CONFLICT. With `mtu` and/or `bridge` it then sets the MTU (the bridge's
   * unless given), enslaves it and brings it up; a TAP it created is deleted again if that fails.
   */
  async createTap(spec: TapSpec, options?: OperationOptions): Promise<CreateTapResult> {
    const input = parseTapSpec(spec);
    return this.#run(options, async (signal) => {
      const knownMtu =
        input.bridge === undefined ? undefined : (input.mtu ?? this.#bridgeMtus.get(input.bridge));
      const readBridge = input.bridge !== undefined && knownMtu === undefined;
      const create: IpLine[] = [
        ...(readBridge ? [{ text: `link show dev ${input.bridge}`, read: true }] : []),
        // Read in the same batch: a TAP already there as wanted (a start or restore re-asserting it) is adopted
        // without another `ip` run.
        { text: `link show dev ${input.name}`, read: true },
        { text: tuntapAdd(input) },
      ];
      const results = await this.#ip.run(create, signal);
      const shown = results.at(-2)!;
      const added = results.at(-1)!;
      let created = true;
      // A new TAP has the kernel's default MTU and is on no bridge; an adopted one is as it is.
      let existing: LinkInfo | undefined;
      if (!added.ok) {
        // EBUSY: the name is taken. Adopt it only if it is a TAP of the same queue mode.
        if (added.error.code !== 'CONFLICT') throw added.error;
        created = false;
        existing = shown.ok
          ? adoptable(parseLink(shown.output, input.name), input)
          : await this.#adoptable(input);
        if (input.owner) {
          const owner = existing.tunOwner ?? (await readTapOwner(this.#host, input.name, signal));
          if (!sameOwner(owner, input.owner)) {
            // Only TUNSETOWNER changes an owner, and only `ip tuntap add` (exclusive) would call it: make it again.
            // A VMM is not holding it: the manager attaches before it starts one.
            orThrow(await this.#ip.run([{ text: `link del dev ${input.name}` }, { text: tuntapAdd(input) }]));
            existing = undefined;
          }
        }
      }

      let mtu = input.mtu ?? knownMtu;
      if (readBridge) {
        const bridge = results[0]!;
        if (!bridge.ok) {
          if (created) await this.#deleteQuietly(input.name);
          throw bridge.error;
        }
        mtu ??= parseLink(bridge.output, input.bridge!).mtu;
      }
      const currentMtu = existing?.mtu ?? DEFAULT_TAP_MTU;
      const setMtu = mtu !== undefined && mtu !== currentMtu ? ` mtu ${mtu}` : '';
      const inPlace =
        existing !== undefined &&
        setMtu === '' &&
        (input.bridge === undefined ||
          (existing.master === input.bridge && existing.hairpin === true && existing.up));
      const configure = inPlace
        ? []
        : input.bridge === undefined
          ? setMtu === ''
            ? []
            : [`link set dev ${input.name}${setMtu}`]
          : [...enslave(input.name, input.bridge, setMtu), `link set dev ${input.name} up`];
      if (configure.length > 0) {
        try {
          orThrow(await this.#ip.run(configure.map((text) => ({ text }))));
        } catch (error) {
          if (created) await this.#deleteQuietly(input.name);
          throw error;
        }
      }
      return { name: input.name, created };
    });
  }

  async #adoptable(input: TapInput): Promise<LinkInfo> {
    const [shown] = await this.#ip.run([{ text: `link show dev ${input.name}`, read: true }]);
    if (!shown!.ok) {
      throw conflict(`${input.name} was taken, then disappeared while we looked at it`);
    }
    return adoptable(parseLink(shown!.output, input.name), input);
  }

  /**
   * `ip link set dev TAP mtu <bridge's> master BRIDGE`: the TAP takes the bridge's MTU first, so joining never lowers
   * the bridge's. Works for any interface (a veth too).
   */
  async addToBridge(tap: string, bridge: string, options?: OperationOptions): Promise<void> {
    const port = validateInterfaceName(tap, 'tap');
    const master = validateInterfaceName(bridge, 'bridge');
    return this.#run(options, async (signal) => {
      let mtu = this.#bridgeMtus.get(master);
      if (mtu === undefined) {
        const [shown] = await this.#ip.run([{ text: `link show dev ${master}`, read: true }], signal);
        if (!shown!.ok) throw shown!.error;
        const link = parseLink(shown!.output, master);
        if (link.kind !== 'bridge') throw new NetOpsError('NOT_FOUND', `${master} is not a bridge`);
        mtu = link.mtu;
      }
      const lines = enslave(port, master, ` mtu ${mtu}`);
      orThrow(
        await this.#ip.run(
          lines.map((text) => ({ text })),
          signal,
        ),
      );
    });
  }

  /** `ip link set dev TAP up`. */
  async bringUp(tap: string, options?: OperationOptions): Promise<void> {
    const name = validateInterfaceName(tap, 'tap');
    return this.#run(options, async (signal) => {
      orThrow(await this.#ip.run([{ text: `link set dev ${name} up` }], signal));
    });
  }

  /**
   * Looks first (an interface that is not a TAP is CONFLICT and stays), then `ip link del dev NAME`, which, unlike
   * `ip tuntap del`, tells a missing device apart: that is `existed: false`.
   */
  async deleteTap(name: string, options?: OperationOptions): Promise<DeleteTapResult> {
    const tap = validateInterfaceName(name, 'name');
    return this.#run(options, async (signal) => {
      const [shown] = await this.#ip.run([{ text: `link show dev ${tap}`, read: true }], signal);
      if (!shown!.ok) {
        if (shown!.error.code === 'NOT_FOUND') return { name: tap, existed: false };
        throw shown!.error;
      }
      const link = parseLink(shown!.output, tap);
      if (!isTap(link))
        throw conflict(`${tap} is ${link.kind ? `a ${link.kind} device` : 'not a TAP'}; not deleting it`);
      const [deleted] = await this.#ip.run([{ text: `link del dev ${tap}` }]);
      if (!deleted!.ok) {
        if (deleted!.error.code === 'NOT_FOUND') return { name: tap, existed: false };
        throw deleted!.error;
      }
      return { name: tap, existed: true };
    });
  }

  async addPortForward(rule: PortForwardRule, options?: OperationOptions): Promise<AddPortForwardResult> {
    const parsed = parsePortForwardRule(rule);
    return this.#run(options, async (signal) => {
      return this.#nat.addPortForward(parsed, signal);
    });
  }

  async removePortForward(
    rule: PortForwardRule,
    options?: OperationOptions,
  ): Promise<RemovePortForwardResult> {
    const parsed = parsePortForwardRule(rule);
    return this.#run(options, async (signal) => {
      return this.#nat.removePortForward(parsed, signal);
    });
  }

  async listPortForwards(options?: OperationOptions): Promise<PortForwardRule[]> {
    return this.#run(options, async (signal) => {
      return this.#nat.listPortForwards(signal);
    });
  }

  /** Stops taking operations and waits for the running ones to finish. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= Promise.allSettled([...this.#running]).then(() => undefined);
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Checks the options, refuses work after close, honours an aborted signal, and tracks the operation for close. */
  #run<T>(
    options: OperationOptions | undefined,
    body: (signal: AbortSignal | undefined) => Promise<T>,
  ): Promise<T> {
    const signal = signalOf(options);
    if (this.#closing) throw new NetOpsError('BACKEND_UNAVAILABLE', 'this LocalOps is closed');
    throwIfAborted(signal);
    const operation = body(signal);
    this.#running.add(operation);
    const forget = () => this.#running.delete(operation);
    operation.then(forget, forget);
    return operation;
  }

  /** Undoes our own creation after a later step failed; the original error is what the caller needs to see. */
  async #deleteQuietly(name: string): Promise<void> {
    try {
      await this.#ip.run([{ text: `link del dev ${name}` }]);
    } catch {
      // The original failure is reported; a leftover device is found by the next ensure/create.
    }
  }
}

/**
 * Joins `port` to `bridge` (after the MTU, so joining never lowers the bridge's) and turns on hairpin mode: with
 * br_netfilter loaded, a VM that reaches its own forwarded port gets the reply back through its own port, which a
 * bridge only does in hairpin mode. (The kernel refuses both in one message, hence two lines.)
 */
function enslave(port: string, bridge: string, setMtu: string): string[] {
  return [
    `link set dev ${port}${setMtu} master ${bridge}`,
    `link set dev ${port} type bridge_slave hairpin on`,
  ];
}

/** `link` when it is a TAP of the queue mode `input` asks for (CONFLICT otherwise). */
function adoptable(link: LinkInfo, input: TapInput): LinkInfo {
  if (!isTap(link)) {
    throw conflict(`${input.name} exists and is ${link.kind ? `a ${link.kind} device` : 'not a TAP'}`);
  }
  if (link.multiQueue !== input.multiQueue) {
    throw conflict(`${input.name} exists as a ${link.multiQueue ? 'multi-queue' : 'single-queue'} TAP`);
  }
  return link;
}

function tuntapAdd(input: TapInput): string {
  const queue = input.multiQueue ? ' multi_queue' : '';
  const owner = input.owner ? ` user ${input.owner.uid} group ${input.owner.gid}` : '';
  return `tuntap add dev ${input.name} mode tap${queue}${owner}`;
}
