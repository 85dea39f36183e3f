import type { EgressRule, VmNetworkPolicy, VmPolicyCounters } from '@my-hypervisor/net-ops';
import { z } from 'zod';

/** A port the host offers isolated VMs on their gateway address (DNS by default). */
export interface HostPort {
  readonly protocol: 'tcp' | 'udp';
  readonly port: number;
}

/** What the policy rules of one VM are made from. */
export interface PolicyTarget {
  /** The host end of the VM's veth (named like the TAP): the bridge port its frames enter by. */
  readonly port: string;
  readonly ipv4: string;
  readonly mac: string;
  /** The VM subnet in canonical form and its gateway. */
  readonly subnet: string;
  readonly gateway: string;
  readonly policy: Required<VmNetworkPolicy>;
  readonly hostPorts: readonly HostPort[];
}

/** The per-VM suffix of chain and counter names (nft identifiers: letters, digits, `_`). */
export function policyTag(port: string): string {
  return port.replace(/[^A-Za-z0-9_]/g, '_');
}

/**
 * The structure of our two tables, safe to load again (`add` then `flush chain`, as nft-ruleset.ts does):
 *
 * - `bridge T` guards the bridge ports of namespace VMs: frames must carry the VM's own MAC and IPv4 (no spoofing
 *   another VM's address, which would also take its policy), only IPv4 and ARP, and isolated VMs exchange no frames
 *   with other ports (VM to VM on the bridge).
 * - `inet T` holds what needs connection tracking: egress through the host (`forward`) and traffic to the host
 *   itself (`input`), each dispatched by the VM's source address to the VM's own chain. Answers to connections
 *   made to the VM (port forwards, the host) always pass.
 *
 * Both sit before other tables' filter chains (priority -5): an accept elsewhere cannot overrule our drop.
 */
export function namespaceStructure(table: string): string[] {
  const b = `bridge ${table}`;
  const i = `inet ${table}`;
  return [
    `add table ${b}`,
    `add set ${b} ports { type ifname ; }`,
    `add set ${b} sources { type ifname . ipv4_addr ; }`,
    `add set ${b} macs { type ifname . ether_addr ; }`,
    `add set ${b} isolated_ports { type ifname ; }`,
    `add map ${b} isolated { type ifname : verdict ; }`,
    `add chain ${b} prerouting { type filter hook prerouting priority -205 ; policy accept ; }`,
    `flush chain ${b} prerouting`,
    `add rule ${b} prerouting iifname @ports iifname . ether saddr != @macs drop`,
    `add rule ${b} prerouting iifname @ports ether type != { ip, arp } drop`,
    `add rule ${b} prerouting iifname @ports ether type ip iifname . ip saddr != @sources drop`,
    `add rule ${b} prerouting iifname @ports ether type arp iifname . arp saddr ip != @sources drop`,
    `add chain ${b} forward { type filter hook forward priority -5 ; policy accept ; }`,
    `flush chain ${b} forward`,
    `add rule ${b} forward iifname vmap @isolated`,
    `add rule ${b} forward oifname @isolated_ports drop`,
    `add table ${i}`,
    `add map ${i} egress { type ipv4_addr : verdict ; }`,
    `add map ${i} host_input { type ipv4_addr : verdict ; }`,
    `add chain ${i} forward { type filter hook forward priority -5 ; policy accept ; }`,
    `flush chain ${i} forward`,
    `add rule ${i} forward ct state established,related accept`,
    `add rule ${i} forward ip saddr vmap @egress`,
    `add chain ${i} input { type filter hook input priority -5 ; policy accept ; }`,
    `flush chain ${i} input`,
    `add rule ${i} input ct state established,related accept`,
    `add rule ${i} input ip saddr vmap @host_input`,
  ];
}

function q(name: string): string {
  return `"${name}"`;
}

function egressMatch(rule: EgressRule): string {
  const dst = `ip daddr ${rule.cidr}`;
  const ports = rule.ports ? `{ ${[...new Set(rule.ports)].join(', ')} }` : undefined;
  if (rule.proto === 'icmp') return `${dst} meta l4proto icmp`;
  if (rule.proto && ports) return `${dst} ${rule.proto} dport ${ports}`;
  if (rule.proto) return `${dst} meta l4proto ${rule.proto}`;
  if (ports) return `${dst} meta l4proto { tcp, udp } th dport ${ports}`;
  return dst;
}

/**
 * The lines that give one VM its policy, idempotent: chains are flushed before they are filled, elements are `add`ed
 * (identical ones are left alone), counters keep their values.
 */
export function attachPolicyLines(table: string, t: PolicyTarget): string[] {
  const b = `bridge ${table}`;
  const i = `inet ${table}`;
  const tag = policyTag(t.port);
  const isolated = t.policy.isolation === 'vm';
  const egress = t.policy.egress;
  const lines = [
    `add counter ${b} iso_${tag}`,
    `add counter ${i} iso_${tag}`,
    `add counter ${i} egr_${tag}`,
    `add element ${b} ports { ${q(t.port)} }`,
    `add element ${b} sources { ${q(t.port)} . ${t.ipv4} }`,
    `add element ${b} macs { ${q(t.port)} . ${t.mac} }`,
    `add chain ${i} out_${tag}`,
    `flush chain ${i} out_${tag}`,
    isolated
      ? `add rule ${i} out_${tag} ip daddr ${t.subnet} counter name iso_${tag} drop`
      : `add rule ${i} out_${tag} ip daddr ${t.subnet} accept`,
  ];
  if (egress === 'allow-all') lines.push(`add rule ${i} out_${tag} accept`);
  else {
    if (Array.isArray(egress)) {
      for (const rule of egress) lines.push(`add rule ${i} out_${tag} ${egressMatch(rule)} accept`);
    }
    lines.push(`add rule ${i} out_${tag} counter name egr_${tag} drop`);
  }
  lines.push(`add element ${i} egress { ${t.ipv4} : jump out_${tag} }`);
  if (isolated) {
    lines.push(
      `add chain ${b} fwd_${tag}`,
      `flush chain ${b} fwd_${tag}`,
      `add rule ${b} fwd_${tag} ether type ip counter name iso_${tag} drop`,
      `add rule ${b} fwd_${tag} drop`,
      `add element ${b} isolated { ${q(t.port)} : jump fwd_${tag} }`,
      `add element ${b} isolated_ports { ${q(t.port)} }`,
      `add chain ${i} in_${tag}`,
      `flush chain ${i} in_${tag}`,
      `add rule ${i} in_${tag} ip daddr != ${t.gateway} counter name iso_${tag} drop`,
      `add rule ${i} in_${tag} icmp type echo-request accept`,
      ...t.hostPorts.map((p) => `add rule ${i} in_${tag} ${p.protocol} dport ${p.port} accept`),
      `add rule ${i} in_${tag} counter name iso_${tag} drop`,
      `add element ${i} host_input { ${t.ipv4} : jump in_${tag} }`,
    );
  }
  return lines;
}

/**
 * The lines that take one VM's policy away, idempotent: each element, chain and counter is added first (a no-op
 * when it exists) so that deleting it cannot fail on a half-made or already-removed VM.
 */
export function detachPolicyLines(
  table: string,
  t: { readonly port: string; readonly ipv4: string | undefined; readonly mac: string | undefined },
): string[] {
  const b = `bridge ${table}`;
  const i = `inet ${table}`;
  const tag = policyTag(t.port);
  const lines: string[] = [];
  const drop = (kind: string, family: string, name: string, element: string) =>
    lines.push(
      `add ${kind} ${family} ${name} { ${element} }`,
      `delete ${kind} ${family} ${name} { ${element} }`,
    );
  lines.push(`add chain ${i} out_${tag}`, `add chain ${i} in_${tag}`, `add chain ${b} fwd_${tag}`);
  if (t.ipv4 !== undefined) {
    drop('element', i, 'egress', `${t.ipv4} : jump out_${tag}`);
    drop('element', i, 'host_input', `${t.ipv4} : jump in_${tag}`);
    drop('element', b, 'sources', `${q(t.port)} . ${t.ipv4}`);
  }
  if (t.mac !== undefined) drop('element', b, 'macs', `${q(t.port)} . ${t.mac}`);
  drop('element', b, 'isolated', `${q(t.port)} : jump fwd_${tag}`);
  drop('element', b, 'isolated_ports', q(t.port));
  drop('element', b, 'ports', q(t.port));
  for (const [family, chain] of [
    [i, `out_${tag}`],
    [i, `in_${tag}`],
    [b, `fwd_${tag}`],
  ] as const) {
    lines.push(`flush chain ${family} ${chain}`, `delete chain ${family} ${chain}`);
  }
  for (const [family, counter] of [
    [b, `iso_${tag}`],
    [i, `iso_${tag}`],
    [i, `egr_${tag}`],
  ] as const) {
    lines.push(`add counter ${family} ${counter}`, `delete counter ${family} ${counter}`);
  }
  return lines;
}

const counterList = z.object({
  nftables: z.array(
    z.looseObject({
      counter: z
        .looseObject({ family: z.string(), table: z.string(), name: z.string(), packets: z.number() })
        .optional(),
    }),
  ),
});

/** One VM's drop counters from `nft -j list counters` output (zeros for counters that are not there). */
export function parsePolicyCounters(json: unknown, table: string, port: string): VmPolicyCounters {
  const parsed = counterList.safeParse(json);
  if (!parsed.success) return { egressDenied: 0, isolationDenied: 0 };
  const tag = policyTag(port);
  let egressDenied = 0;
  let isolationDenied = 0;
  for (const entry of parsed.data.nftables) {
    const c = entry.counter;
    if (!c || c.table !== table || (c.family !== 'inet' && c.family !== 'bridge')) continue;
    if (c.name === `iso_${tag}`) isolationDenied += c.packets;
    else if (c.name === `egr_${tag}` && c.family === 'inet') egressDenied += c.packets;
  }
  return { egressDenied, isolationDenied };
}

/** The address whose `egress` element jumps to the port's chain, from `nft -j list map inet T egress`. */
export function findPolicyAddress(json: unknown, port: string): string | undefined {
  const want = `out_${policyTag(port)}`;
  const text = JSON.stringify(json);
  // Elements print as [address, {"jump": {"target": chain}}]; a regex over the JSON keeps this independent of
  // nft's nesting, which differs between versions.
  const match = new RegExp(`"([0-9.]+)",\\{"jump":\\{"target":"${want}"\\}\\}`).exec(text);
  return match?.[1];
}
