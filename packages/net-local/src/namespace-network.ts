import { promises as fs } from 'node:fs';
import {
  type AddPortForwardResult,
  type BridgeOps,
  deriveTapName,
  invalidArgument,
  type NatOps,
  NetOpsError,
  type NetworkBackend,
  noCapabilities,
  type OperationOptions,
  type PortForwardRule,
  parseNetworkPolicy,
  parsePortForwardRule,
  type RemovePortForwardResult,
  TapNetwork,
  type TapOps,
  type TapOwner,
  throwIfAborted,
  type VmNetworkAttachment,
  type VmNetworkDetachRequest,
  type VmNetworkDetachResult,
  type VmNetworkPolicy,
  type VmNetworkRequest,
  type VmPolicyCounters,
  validateInterfaceName,
  validateIPv4,
  validatePort,
} from '@my-hypervisor/net-ops';
import { commandError } from './command-error.js';
import { type CommandRunner, execaRunner } from './command-runner.js';
import { HostCommands } from './host-commands.js';
import { IpBatcher, type IpLine, type IpLineResult } from './ip-batcher.js';
import { KeyedLock } from './keyed-lock.js';
import {
  attachPolicyLines,
  detachPolicyLines,
  type HostPort,
  namespaceStructure,
  parsePolicyCounters,
} from './namespace-ruleset.js';
import { NftBatcher } from './nft-batcher.js';
import { SharedRead } from './shared-read.js';
import { readTapOwner, sameOwner } from './tap-owner.js';

/** The host side (bridge, forwards), the subnet, and how the per-VM namespaces are named and reached. */
export interface NamespaceNetworkOptions {
  /** The host bridge every VM's veth joins (its gateway address, NAT for the subnet). */
  readonly bridge: BridgeOps;
  /** Port forwards, host port → VM, as with `TapNetwork`. */
  readonly nat: NatOps;
  readonly bridgeName: string;
  /** The VM subnet, e.g. `10.62.0.0/24`. */
  readonly subnet: string;
  /** The bridge's address inside the subnet; network + 1 by default. */
  readonly gateway?: string;
  /** MTU of each VM's TAP, veth pair and namespace bridge; the kernel's default without it. */
  readonly mtu?: number;
  /**
   * The namespace the host side lives in (where `bridgeName` is), as `LocalOps`' `netns`; the host's own without
   * it. The per-VM namespaces are named ones (`/run/netns`) either way.
   */
  readonly netns?: string;
  /** Per-VM namespaces are `<prefix><vmId>`. Default `myhv-`. */
  readonly namespacePrefix?: string;
  /** Our nft tables (`bridge` and `inet` families, both this name). Default `myhv_ns`. */
  readonly tableName?: string;
  /** What isolated VMs may reach on their gateway besides ICMP echo. Default DNS: udp/53 and tcp/53. */
  readonly hostPorts?: readonly HostPort[];
  readonly runner?: CommandRunner;
  /** Any single command running longer than this is killed. Default 30,000 ms. */
  readonly commandTimeoutMs?: number;
  /** Told about a failed undo step (attach rethrows the original error either way). */
  readonly onRollbackError?: (error: unknown, step: string) => void;
}

const NETNS_DIR = '/run/netns';
/** The names inside every VM namespace: its bridge (ifindex 2 in a fresh namespace) and its veth end (3). */
const NS_BRIDGE = 'br0';
const NS_VETH = 'eth0';
const DEFAULT_HOST_PORTS: readonly HostPort[] = Object.freeze([
  { protocol: 'udp', port: 53 },
  { protocol: 'tcp', port: 53 },
]);

function isCode(error: unknown, code: string): boolean {
  return NetOpsError.isInstance(error) && error.code === code;
}

function orThrow(results: readonly IpLineResult[]): void {
  for (const result of results) if (!result.ok) throw result.error;
}

/** The TAP contract `TapNetwork` is built with here: never called (attach and detach are ours). */
const noTapOps: TapOps = {
  specificationVersion: 'v1',
  capabilities: noCapabilities,
  createTap: () => Promise.reject(new NetOpsError('UNSUPPORTED', 'createTap')),
  addToBridge: () => Promise.reject(new NetOpsError('UNSUPPORTED', 'addToBridge')),
  bringUp: () => Promise.reject(new NetOpsError('UNSUPPORTED', 'bringUp')),
  deleteTap: () => Promise.reject(new NetOpsError('UNSUPPORTED', 'deleteTap')),
};

interface NsLink {
  readonly name: string;
  readonly index: number;
  readonly kind: string | undefined;
  readonly master: string | undefined;
}

function parseNsLinks(output: unknown): NsLink[] {
  if (!Array.isArray(output)) return [];
  return output.flatMap((raw: unknown) => {
    const l = raw as {
      ifname?: unknown;
      ifindex?: unknown;
      master?: unknown;
      linkinfo?: { info_kind?: unknown };
    };
    if (typeof l.ifname !== 'string' || typeof l.ifindex !== 'number') return [];
    return [
      {
        name: l.ifname,
        index: l.ifindex,
        kind: typeof l.linkinfo?.info_kind === 'string' ? l.linkinfo.info_kind : undefined,
        master: typeof l.master === 'string' ? l.master : undefined,
      },
    ];
  });
}

/**
 * The namespace backend: each VM in its own network namespace `<prefix><vmId>`, where its TAP lives and its VMM
 * runs (`VmNetworkAttachment.netns`). Inside, a bridge joins the TAP to one end of a veth pair; the other end,
 * named like the TAP, is a port of the host bridge, so the VM keeps the address the manager allocated and the host's
 * NAT and port forwards work as with `TapNetwork`.
 *
 * Policy (isolation, egress) is enforced by nft on the host, out of reach of the guest and of the VMM, which is
 * root inside its namespace and could rewrite any rule kept there. Isolation `vm` (the default): no frames to or
 * from other VMs' ports, nothing routed to the VM subnet, and on the host only the gateway's offered ports;
 * spoofed source MACs and addresses are dropped at the port. Drops are counted per VM (`policyCounters`).
 *
 * Everything is set up from outside the VM's namespace: the namespace bridge is created in it with a known ifindex,
 * the veth's inner end is created there with that bridge as master, and the TAP is moved in with its master in the
 * same message — no process ever enters the namespace, so the commands of many VMs share one `ip -batch`.
 */
export class NamespaceNetwork implements NetworkBackend, AsyncDisposable {
  readonly specificationVersion = 'v1' as const;
  readonly enforcesPolicy = true;
  readonly setsTapOwner = true;
  readonly bridge: string;
  readonly subnet: string;
  readonly gateway: string;
  readonly prefixLength: number;
  readonly netmask: string;
  readonly mtu: number | undefined;
  readonly namespacePrefix: string;
  readonly tableName: string;
  readonly hostPorts: readonly HostPort[];

  /** Validation, the shared bridge ensure and the forwards: the same as for TAPs on the bridge. */
  readonly #tapNetwork: TapNetwork;
  readonly #nat: NatOps;
  readonly #hostCommands: HostCommands;
  readonly #rootCommands: HostCommands;
  readonly #runner: CommandRunner;
  readonly #timeoutMs: number;
  /** `ip` in the host side's namespace; `netns add/del` must run in this process's mount namespace. */
  readonly #hostIp: IpBatcher;
  readonly #rootIp: IpBatcher;
  readonly #nft: NftBatcher;
  readonly #bridgeTable: SharedRead<unknown>;
  readonly #counters: SharedRead<unknown>;
  readonly #locks = new KeyedLock();
  readonly #onRollbackError: ((error: unknown, step: string) => void) | undefined;

  constructor(options: NamespaceNetworkOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    this.#tapNetwork = new TapNetwork({
      bridge: options.bridge,
      tap: noTapOps,
      nat: options.nat,
      bridgeName: options.bridgeName,
      subnet: options.subnet,
      ...(options.gateway === undefined ? {} : { gateway: options.gateway }),
      ...(options.mtu === undefined ? {} : { mtu: options.mtu }),
    });
    this.#nat = options.nat;
    this.bridge = this.#tapNetwork.bridge;
    this.subnet = this.#tapNetwork.subnet;
    this.gateway = this.#tapNetwork.gateway;
    this.prefixLength = this.#tapNetwork.prefixLength;
    this.netmask = this.#tapNetwork.netmask;
    this.mtu = this.#tapNetwork.mtu;
    this.namespacePrefix = options.namespacePrefix ?? 'myhv-';
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/.test(this.namespacePrefix))
      throw invalidArgument(
        'namespacePrefix',
        'must be 1–32 letters, digits, _ . - (not starting with . or -)',
      );
    this.tableName = options.tableName ?? 'myhv_ns';
    if (!/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(this.tableName))
      throw invalidArgument('tableName', 'must be a letter then up to 31 letters, digits or _');
    this.hostPorts = Object.freeze(
      (options.hostPorts ?? DEFAULT_HOST_PORTS).map((p, i) => {
        if (p?.protocol !== 'tcp' && p?.protocol !== 'udp')
          throw invalidArgument(`hostPorts.${i}.protocol`, "must be 'tcp' or 'udp'");
        return { protocol: p.protocol, port: validatePort(p.port, `hostPorts.${i}.port`) };
      }),
    );
    if (options.netns !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(options.netns))
      throw invalidArgument(
        'netns',
        'must be 1–64 characters of letters, digits, _ . - (not starting with . or -)',
      );
    this.#runner = options.runner ?? execaRunner;
    this.#timeoutMs = options.commandTimeoutMs ?? 30_000;
    this.#rootCommands = new HostCommands({ runner: this.#runner, timeoutMs: this.#timeoutMs });
    this.#rootIp = new IpBatcher(this.#rootCommands);
    if (options.netns === undefined) {
      this.#hostCommands = this.#rootCommands;
      this.#hostIp = this.#rootIp;
    } else {
      this.#hostCommands = new HostCommands({
        netns: options.netns,
        runner: this.#runner,
        timeoutMs: this.#timeoutMs,
      });
      this.#hostIp = new IpBatcher(this.#hostCommands);
    }
    this.#nft = new NftBatcher(this.#hostCommands, () => namespaceStructure(this.tableName));
    this.#bridgeTable = new SharedRead(() => this.#listJson(['list', 'table', 'bridge', this.tableName]));
    this.#counters = new SharedRead(() => this.#listJson(['list', 'counters']));
    this.#onRollbackError = options.onRollbackError;
  }

  /** The network namespace of a VM. */
  namespaceOf(vmId: string): string {
    return `${this.namespacePrefix}${this.#validateVmId(vmId)}`;
  }

  ensureBridge(options?: OperationOptions): Promise<void> {
    return this.#tapNetwork.ensureBridge(options);
  }

  async attach(vm: VmNetworkRequest, options?: OperationOptions): Promise<VmNetworkAttachment> {
    const signal = options?.signal;
    throwIfAborted(signal);
    if (typeof vm !== 'object' || vm === null) throw new TypeError('vm must be an object');
    const netns = this.namespaceOf(vm.vmId);
    const { vmId, multiQueue, tapOwner, forwards, attachment } = this.#tapNetwork.parseRequest(vm);
    const { tap: port, mac, ipv4 } = attachment;
    const policy = resolvePolicy(vm.policy);

    return this.#locks.run(vmId, async () => {
      await this.#tapNetwork.ensureBridge(options);
      throwIfAborted(signal);
      const created = await this.#plumb(netns, port, multiQueue, tapOwner, signal);
      const added: PortForwardRule[] = [];
      try {
        await this.#applyPolicy(
          attachPolicyLines(this.tableName, {
            port,
            ipv4,
            mac,
            subnet: this.subnet,
            gateway: this.gateway,
            policy,
            hostPorts: this.hostPorts,
          }),
        );
        for (const rule of forwards) {
          if ((await this.#nat.addPortForward(rule, options)).created) added.push(rule);
        }
      } catch (error) {
        for (const rule of added.reverse()) {
          await this.#undo(`removePortForward ${rule.protocol}/${rule.hostPort}`, () =>
            this.#nat.removePortForward(rule),
          );
        }
        await this.#undo(`remove policy of ${port}`, () =>
          this.#applyPolicy(detachPolicyLines(this.tableName, { port, ipv4, mac })),
        );
        if (created) await this.#undo(`delete namespace ${netns}`, () => this.#unplumb(netns, port, true));
        throw error;
      }
      return { ...attachment, created, netns };
    });
  }

  async detach(vm: VmNetworkDetachRequest, options?: OperationOptions): Promise<VmNetworkDetachResult> {
    throwIfAborted(options?.signal);
    if (typeof vm !== 'object' || vm === null) throw new TypeError('vm must be an object');
    const vmId = this.#validateVmId(vm.vmId);
    const netns = this.namespaceOf(vmId);
    const port = vm.tap === undefined ? deriveTapName(vmId) : validateInterfaceName(vm.tap, 'tap');
    const given = vm.ipv4 === undefined ? undefined : validateIPv4(vm.ipv4, 'ipv4');
    const forwards = this.#validateForwards(vm.forwards, undefined);
    return this.#locks.run(vmId, async () => {
      for (const rule of forwards) await this.#nat.removePortForward(rule, options);
      // What the policy was keyed by, as installed (a caller may not know the MAC, an orphan sweep not the address).
      const installed = await this.#installedKeys(port);
      await this.#applyPolicy(
        detachPolicyLines(this.tableName, { port, ipv4: installed.ipv4 ?? given, mac: installed.mac }),
      );
      const existed = await this.#unplumb(netns, port);
      return { tap: port, existed };
    });
  }

  addForward(rule: PortForwardRule, options?: OperationOptions): Promise<AddPortForwardResult> {
    return this.#tapNetwork.addForward(rule, options);
  }

  removeForward(rule: PortForwardRule, options?: OperationOptions): Promise<RemovePortForwardResult> {
    return this.#tapNetwork.removeForward(rule, options);
  }

  /** Packets the VM's policy dropped since its attach; zeros when it has none installed. */
  async policyCounters(vmId: string, options?: OperationOptions): Promise<VmPolicyCounters> {
    const port = deriveTapName(this.#validateVmId(vmId));
    return parsePolicyCounters(await this.#counters.get(options?.signal), this.tableName, port);
  }

  /** The VM ids that have a namespace (`<prefix><id>` under /run/netns). */
  async listAttached(): Promise<string[]> {
    const entries = await fs.readdir(NETNS_DIR).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [] as string[];
      throw error;
    });
    return entries
      .filter((name) => name.startsWith(this.namespacePrefix) && name.length > this.namespacePrefix.length)
      .map((name) => name.slice(this.namespacePrefix.length));
  }

  async [Symbol.asyncDispose](): Promise<void> {}

  /**
   * Makes the VM's namespace, TAP, namespace bridge and veth pair, or repairs what is missing of them (and makes the
   * TAP again when it has another owner than `tapOwner`). True when the namespace was made now (so a failed attach
   * removes it again).
   */
  async #plumb(
    netns: string,
    port: string,
    multiQueue: boolean,
    tapOwner: TapOwner | undefined,
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    const mtu = this.mtu === undefined ? '' : ` mtu ${this.mtu}`;
    const owner = tapOwner ? ` user ${tapOwner.uid} group ${tapOwner.gid}` : '';
    const tuntapAdd = `tuntap add dev ${port} mode tap${multiQueue ? ' multi_queue' : ''}${owner}`;
    const tapLines = (bridgeIndex: number) => [
      tuntapAdd,
      // Moved, enslaved and up in one message: no process has to enter the namespace.
      `link set dev ${port} netns ${netns} master if${bridgeIndex}${mtu} up`,
    ];
    const vethLines = (bridgeIndex: number) => [
      `link add name ${NS_VETH} netns ${netns} master if${bridgeIndex}${mtu} up type veth peer name ${port}${mtu}`,
      `link set dev ${port} master ${this.bridge} up`,
    ];
    if (!(await namespaceExists(netns))) {
      const hostLines = [
        `link add name ${NS_BRIDGE} index 2 netns ${netns}${mtu} up type bridge`,
        ...tapLines(2),
        ...vethLines(2),
      ];
      for (let attempt = 0; ; attempt++) {
        try {
          if (this.#rootIp === this.#hostIp) {
            orThrow(await this.#rootIp.run(toLines([`netns add ${netns}`, ...hostLines]), signal));
          } else {
            orThrow(await this.#rootIp.run(toLines([`netns add ${netns}`]), signal));
            orThrow(await this.#hostIp.run(toLines(hostLines)));
          }
          return true;
        } catch (error) {
          await this.#undo(`delete namespace ${netns}`, () => this.#unplumb(netns, port, true));
          // A host port of the same name from a detach a moment ago, its namespace still being torn down: the veth
          // is EEXIST, the TAP (same name) EBUSY. It is gone now (the undo deleted it), so try once more.
          if (attempt > 0 || !(isCode(error, 'ALREADY_EXISTS') || isCode(error, 'CONFLICT'))) throw error;
        }
      }
    }

    // The namespace is there (a repeated attach, a start after a crash, a host port someone deleted): keep what is
    // right, make what is missing.
    const inside = new HostCommands({ netns, runner: this.#runner, timeoutMs: this.#timeoutMs });
    const shown = await inside.run('ip', ['-json', '-details', 'link', 'show'], signal ? { signal } : {});
    if (shown.exitCode !== 0) {
      throw commandError(inside.failure(shown));
    }
    const links = parseNsLinks(JSON.parse(shown.stdout || '[]'));
    const [hostPortResult] = await this.#hostIp.run([{ text: `link show dev ${port}`, read: true }], signal);
    const hostPort = hostPortResult?.ok
      ? parseNsLinks(hostPortResult.output).find((l) => l.name === port)
      : undefined;
    if (hostPortResult && !hostPortResult.ok && !isCode(hostPortResult.error, 'NOT_FOUND'))
      throw hostPortResult.error;

    const hostLines: string[] = [];
    const insideLines: string[] = [];
    let bridge = links.find((l) => l.name === NS_BRIDGE && l.kind === 'bridge');
    if (!bridge) {
      const index = Math.max(1, ...links.map((l) => l.index)) + 1;
      hostLines.push(`link add name ${NS_BRIDGE} index ${index} netns ${netns}${mtu} up type bridge`);
      bridge = { name: NS_BRIDGE, index, kind: 'bridge', master: undefined };
    }
    const tap = links.find((l) => l.name === port && l.kind === 'tun');
    // Only TUNSETOWNER changes an owner, and only `ip tuntap add` (exclusive) would call it: make the TAP again,
    // inside (the host port has its name). No VMM holds it: the manager attaches before it starts one.
    const reown =
      tap !== undefined &&
      tapOwner !== undefined &&
      !sameOwner(await readTapOwner(inside, port, signal), tapOwner);
    if (reown) insideLines.push(`link del dev ${port}`);
    else if (!tap) hostLines.push(...tapLines(bridge.index));
    else if (tap.master !== NS_BRIDGE) insideLines.push(`link set dev ${port} master ${NS_BRIDGE} up`);
    const veth = links.find((l) => l.name === NS_VETH && l.kind === 'veth');
    if (!veth || !hostPort) {
      if (veth) insideLines.push(`link del dev ${NS_VETH}`);
      if (hostPort) hostLines.unshift(`link del dev ${port}`);
      hostLines.push(...vethLines(bridge.index));
    } else if (hostPort.master !== this.bridge) {
      hostLines.push(`link set dev ${port} master ${this.bridge} up`);
    }
    await runIpBatch(inside, insideLines);
    if (hostLines.length > 0) orThrow(await this.#hostIp.run(toLines(hostLines)));
    // After the host lines: they may have made the namespace bridge.
    if (reown) await runIpBatch(inside, [tuntapAdd, `link set dev ${port} master ${NS_BRIDGE}${mtu} up`]);
    return false;
  }

  /**
   * Deletes the namespace and the host port; true when either was there. Deleting a network device waits for an RCU
   * grace period in the kernel (about 17 ms each here), while a deleted namespace is torn down later, many at once,
   * veth pair included: so with the namespace there, only the namespace is deleted. The host port then lingers
   * briefly, which an attach right after copes with (see `#plumb`). `now` deletes the port first, for rollbacks.
   */
  async #unplumb(netns: string, port: string, now = false): Promise<boolean> {
    const hasNamespace = await namespaceExists(netns);
    let portExisted = false;
    if (now || !hasNamespace) {
      const [removedPort] = await this.#hostIp.run(toLines([`link del dev ${port}`]));
      portExisted = removedPort?.ok === true;
      if (removedPort && !removedPort.ok && !isCode(removedPort.error, 'NOT_FOUND')) throw removedPort.error;
    }
    if (!hasNamespace) return portExisted;
    orThrow(await this.#rootIp.run(toLines([`netns del ${netns}`])));
    return true;
  }

  async #applyPolicy(lines: readonly string[]): Promise<void> {
    try {
      await this.#nft.run(lines, 'if-not-applied');
    } catch (error) {
      // Our tables vanished (a reboot, `nft flush ruleset`): load the structure again, once.
      if (!isCode(error, 'NOT_FOUND')) throw error;
      this.#nft.invalidateStructure();
      await this.#nft.run(lines, 'if-not-applied');
    }
  }

  async #installedKeys(port: string): Promise<{ ipv4?: string; mac?: string }> {
    const text = JSON.stringify((await this.#bridgeTable.get()) ?? {});
    const quoted = JSON.stringify(port);
    const ipv4 = new RegExp(`\\{"concat":\\[${quoted},"([0-9.]+)"\\]\\}`).exec(text)?.[1];
    const mac = new RegExp(`\\{"concat":\\[${quoted},"([0-9a-f:]{17})"\\]\\}`).exec(text)?.[1];
    return { ...(ipv4 ? { ipv4 } : {}), ...(mac ? { mac } : {}) };
  }

  /** `nft -j <args>` parsed; undefined when our table is not there. */
  async #listJson(args: readonly string[]): Promise<unknown> {
    const outcome = await this.#hostCommands.run('nft', ['-j', ...args]);
    if (outcome.exitCode !== 0) {
      const error = commandError(this.#hostCommands.failure(outcome));
      if (error.code === 'NOT_FOUND') return undefined;
      throw error;
    }
    try {
      return JSON.parse(outcome.stdout);
    } catch (error) {
      throw new NetOpsError('BACKEND_FAILURE', 'nft printed output that is not JSON', { cause: error });
    }
  }

  #validateVmId(vmId: unknown): string {
    if (typeof vmId !== 'string' || !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(vmId)) {
      throw invalidArgument(
        'vmId',
        'must be 1–64 letters, digits, _ . - (not starting with . or -): it names the VM network namespace',
      );
    }
    return vmId;
  }

  #validateForwards(forwards: unknown, guestIp: string | undefined): PortForwardRule[] {
    if (forwards === undefined) return [];
    if (!Array.isArray(forwards)) throw invalidArgument('forwards', 'must be an array of port-forward rules');
    return forwards.map((rule, i) => {
      const parsed = parsePortForwardRule(rule, `forwards.${i}`);
      this.#tapNetwork.validateGuestIp(parsed.guestIp, `forwards.${i}.guestIp`);
      if (guestIp !== undefined && parsed.guestIp !== guestIp)
        throw invalidArgument(`forwards.${i}.guestIp`, `must be the VM's address ${guestIp}`);
      return parsed;
    });
  }

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

/** `ip -force -batch -` of `lines` in `commands`' namespace; nothing when there are none. */
async function runIpBatch(commands: HostCommands, lines: readonly string[]): Promise<void> {
  if (lines.length === 0) return;
  const result = await commands.run('ip', ['-force', '-batch', '-'], { input: `${lines.join('\n')}\n` });
  if (result.exitCode !== 0) throw commandError(commands.failure(result));
}

function toLines(texts: readonly string[]): IpLine[] {
  return texts.map((text) => ({ text }));
}

async function namespaceExists(name: string): Promise<boolean> {
  try {
    await fs.access(`${NETNS_DIR}/${name}`);
    return true;
  } catch {
    return false;
  }
}

/** The policy with the namespace backend's defaults: isolated, egress open. */
function resolvePolicy(input: VmNetworkPolicy | undefined): Required<VmNetworkPolicy> {
  const policy = input === undefined ? {} : parseNetworkPolicy(input);
  return { isolation: policy.isolation ?? 'vm', egress: policy.egress ?? 'allow-all' };
}
