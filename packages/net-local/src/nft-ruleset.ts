import { type Ipv4Cidr, isIPv4, type PortForwardRule, portForwardRuleSchema } from '@my-hypervisor/net-ops';
import { z } from 'zod';

/**
 * The whole structure of our table, loaded in one `nft -f` transaction and safe to load again: `add` leaves an
 * existing table, map or chain alone, and each chain is flushed and refilled in the same transaction, so no packet
 * sees it half-built. Map and set elements (the forwards, bridges and subnets) survive a reload. Explicit `type`s
 * rather than `typeof`: nft 1.0.6 cannot add a rule that uses a `typeof … th dport` map loaded back from the kernel.
 */
export function nftStructure(table: string): string[] {
  const t = `inet ${table}`;
  const dnat = [
    'meta nfproto ipv4 meta l4proto { tcp, udp } dnat ip to ip daddr . meta l4proto . th dport map @host_forwards',
    'meta nfproto ipv4 meta l4proto { tcp, udp } meta l4proto . th dport != @host_forward_ports fib daddr type local dnat ip to meta l4proto . th dport map @forwards',
  ];
  return [
    `add table ${t}`,
    `add map ${t} forwards { type inet_proto . inet_service : ipv4_addr . inet_service ; }`,
    `add map ${t} host_forwards { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service ; }`,
    `add set ${t} host_forward_ports { type inet_proto . inet_service ; }`,
    `add set ${t} bridges { type ifname ; }`,
    `add set ${t} subnets { type ipv4_addr ; flags interval ; }`,
    `add chain ${t} prerouting { type nat hook prerouting priority dstnat ; policy accept ; }`,
    `flush chain ${t} prerouting`,
    ...dnat.map((rule) => `add rule ${t} prerouting ${rule}`),
    `add chain ${t} output { type nat hook output priority -100 ; policy accept ; }`,
    `flush chain ${t} output`,
    ...dnat.map((rule) => `add rule ${t} output ${rule}`),
    `add chain ${t} postrouting { type nat hook postrouting priority srcnat ; policy accept ; }`,
    `flush chain ${t} postrouting`,
    `add rule ${t} postrouting oifname @bridges ip saddr 127.0.0.0/8 masquerade`,
    `add rule ${t} postrouting oifname @bridges ip saddr @subnets ct status dnat masquerade`,
    `add rule ${t} postrouting oifname != @bridges ip saddr @subnets masquerade`,
    `add chain ${t} forward { type filter hook forward priority filter ; policy accept ; }`,
    `flush chain ${t} forward`,
    `add rule ${t} forward iifname @bridges accept`,
    `add rule ${t} forward oifname @bridges ct state established,related accept`,
    `add rule ${t} forward oifname @bridges ct status dnat accept`,
  ];
}

const cidrText = (cidr: Ipv4Cidr) => `${cidr.network}/${cidr.prefixLength}`;

/**
 * Registers a bridge and its subnet. A stale subnet is added and deleted in the same transaction: that removes it
 * whether or not it is still there, where a bare `delete` of a missing element would fail the transaction.
 */
export function nftBridgeLines(table: string, bridge: string, subnet: Ipv4Cidr, stale: readonly Ipv4Cidr[]) {
  const t = `inet ${table}`;
  return [
    ...stale
      .filter((old) => cidrText(old) !== cidrText(subnet))
      .flatMap((old) => [
        `add element ${t} subnets { ${cidrText(old)} }`,
        `delete element ${t} subnets { ${cidrText(old)} }`,
      ]),
    `add element ${t} bridges { "${bridge}" }`,
    `add element ${t} subnets { ${cidrText(subnet)} }`,
  ];
}

const key = (rule: PortForwardRule) => `${rule.protocol} . ${rule.hostPort}`;
const target = (rule: PortForwardRule) => `${rule.guestIp} . ${rule.guestPort}`;

/**
 * `create` (not `add`) the forward so an existing one on the same protocol and port fails with EEXIST, which the
 * caller turns into "identical" or CONFLICT. The owner rides along as the element's comment.
 */
export function nftAddForwardLines(table: string, rule: PortForwardRule): string[] {
  const t = `inet ${table}`;
  const comment = rule.owner === undefined ? '' : ` comment "${rule.owner}"`;
  const lines = [`create element ${t} forwards { ${key(rule)}${comment} : ${target(rule)} }`];
  if (rule.hostIp !== undefined) {
    lines.push(
      `add element ${t} host_forward_ports { ${key(rule)} }`,
      `add element ${t} host_forwards { ${rule.hostIp} . ${key(rule)} : ${target(rule)} }`,
    );
  }
  return lines;
}

/** Deletes the forward as installed (`installed.hostIp` names its host-address element). */
export function nftRemoveForwardLines(table: string, installed: PortForwardRule): string[] {
  const t = `inet ${table}`;
  const lines = [`delete element ${t} forwards { ${key(installed)} }`];
  if (installed.hostIp !== undefined) {
    lines.push(
      `delete element ${t} host_forward_ports { ${key(installed)} }`,
      `delete element ${t} host_forwards { ${installed.hostIp} . ${key(installed)} }`,
    );
  }
  return lines;
}

const concat = z.object({ concat: z.array(z.union([z.string(), z.number()])) });
const keyed = z.union([
  concat,
  z.object({ elem: z.object({ val: concat, comment: z.string().optional() }) }),
]);
const mapSchema = z.looseObject({
  name: z.string(),
  elem: z.array(z.tuple([keyed, concat])).optional(),
});
const listingSchema = z.object({ nftables: z.array(z.looseObject({ map: mapSchema.optional() })) });

function port(value: string | number | undefined): number | undefined {
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? n : undefined;
}

/**
 * The forwards in `nft -j list table inet T` output: every element of `forwards`, with the owner from its comment and
 * the host address from `host_forwards`. Elements someone else put there in another shape are skipped.
 */
export function parseNftForwards(json: string): PortForwardRule[] {
  const listing = listingSchema.parse(JSON.parse(json));
  const maps = new Map(listing.nftables.flatMap((entry) => (entry.map ? [[entry.map.name, entry.map]] : [])));
  const hostIps = new Map<string, string>();
  for (const [k] of maps.get('host_forwards')?.elem ?? []) {
    const parts = 'concat' in k ? k.concat : k.elem.val.concat;
    const [hostIp, protocol, hostPort] = parts;
    if (typeof hostIp === 'string') hostIps.set(`${protocol}/${port(hostPort)}`, hostIp);
  }
  const rules: PortForwardRule[] = [];
  for (const [k, value] of maps.get('forwards')?.elem ?? []) {
    const [protocol, hostPort] = 'concat' in k ? k.concat : k.elem.val.concat;
    const owner = 'elem' in k ? k.elem.comment : undefined;
    const [guestIp, guestPort] = value.concat;
    const hostIp = hostIps.get(`${protocol}/${port(hostPort)}`);
    const candidate = {
      protocol,
      hostPort: port(hostPort),
      guestIp,
      guestPort: port(guestPort),
      ...(hostIp !== undefined && isIPv4(hostIp) ? { hostIp } : {}),
      ...(owner !== undefined ? { owner } : {}),
    };
    const parsed = portForwardRuleSchema.safeParse(candidate);
    if (parsed.success) rules.push(parsed.data);
    else {
      const { owner: _ignored, ...withoutOwner } = candidate;
      const retry = portForwardRuleSchema.safeParse(withoutOwner);
      if (retry.success) rules.push(retry.data);
    }
  }
  return rules.sort((a, b) => a.protocol.localeCompare(b.protocol) || a.hostPort - b.hostPort);
}
