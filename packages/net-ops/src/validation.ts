import { invalidArgument } from './errors.js';

/** Linux IFNAMSIZ is 16 including the terminating NUL. */
export const MAX_INTERFACE_NAME_BYTES = 15;

const interfaceNamePattern = /^[A-Za-z0-9_.-]+$/;

/** Names the kernel refuses (EINVAL): they name the sysctl directories `net.ipv4.conf.all` and `.default`. */
const reservedInterfaceNames = new Set(['.', '..', 'all', 'default']);

/**
 * Returns `name` if it is a safe Linux interface name: 1–15 bytes of `[A-Za-z0-9_.-]`, not starting with `-`, not
 * `.`, `..`, `all` or `default`. Anything else (spaces, newlines, `/`, `;`, non-ASCII) throws INVALID_ARGUMENT
 * naming `field`, so no hostile name ever reaches a command line or a batch file.
 */
export function validateInterfaceName(name: unknown, field = 'name'): string {
  if (typeof name !== 'string' || name.length === 0)
    throw invalidArgument(field, 'must be a non-empty string');
  if (!interfaceNamePattern.test(name)) {
    throw invalidArgument(
      field,
      `${JSON.stringify(name)} may only contain letters, digits, '_', '.' and '-'`,
    );
  }
  if (name.length > MAX_INTERFACE_NAME_BYTES) {
    throw invalidArgument(field, `${JSON.stringify(name)} is ${name.length} bytes; the limit is 15`);
  }
  // A leading dash would read as an option to `ip`, `nft` or `sysctl` wherever no keyword precedes the name.
  if (name.startsWith('-')) throw invalidArgument(field, `${JSON.stringify(name)} may not start with '-'`);
  if (reservedInterfaceNames.has(name))
    throw invalidArgument(field, `${JSON.stringify(name)} is reserved by the kernel`);
  return name;
}

const ipv4Pattern = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** True when `value` is a dotted-quad IPv4 address. */
export function isIPv4(value: unknown): value is string {
  return typeof value === 'string' && ipv4Pattern.test(value);
}

/** Parses an IPv6 address (with `::` and an optional embedded IPv4 tail) into 8 16-bit groups, or undefined. */
export function parseIPv6(value: string): number[] | undefined {
  if (value.length === 0 || value.length > 45 || !/^[0-9A-Fa-f:.]+$/.test(value)) return undefined;
  let text = value;
  const tail: number[] = [];
  if (text.includes('.')) {
    const lastColon = text.lastIndexOf(':');
    const v4 = text.slice(lastColon + 1);
    if (lastColon < 0 || !isIPv4(v4)) return undefined;
    const n = ipv4ToNumber(v4);
    tail.push(n >>> 16, n & 0xffff);
    const before = text.slice(0, lastColon + 1);
    text = before.endsWith('::') ? before : text.slice(0, lastColon);
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string | undefined) => (part ? part.split(':') : []);
  const head = parse(halves[0]);
  const rest = parse(halves[1]);
  const groups: number[] = [];
  for (const g of [...head, ...rest]) if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return undefined;
  const given = head.length + rest.length + tail.length;
  if (halves.length === 1 ? given !== 8 : given > 7) return undefined;
  groups.push(...head.map((g) => Number.parseInt(g, 16)));
  if (halves.length === 2) for (let i = 0; i < 8 - given; i++) groups.push(0);
  groups.push(...rest.map((g) => Number.parseInt(g, 16)), ...tail);
  return groups.length === 8 ? groups : undefined;
}

/** True when `value` is an IPv6 address (with `::` and an embedded IPv4 tail allowed). */
export function isIPv6(value: unknown): value is string {
  return typeof value === 'string' && parseIPv6(value) !== undefined;
}

/** The canonical (RFC 5952) text of 8 IPv6 groups: lowercase, longest zero run (≥ 2) compressed. */
export function formatIPv6(groups: readonly number[]): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** Returns `value` if it is an IPv4 address, else throws INVALID_ARGUMENT naming `field`. */
export function validateIPv4(value: unknown, field = 'address'): string {
  if (!isIPv4(value)) throw invalidArgument(field, `${JSON.stringify(value)} is not an IPv4 address`);
  return value;
}

/** Returns the canonical text of `value` if it is an IPv6 address, else throws INVALID_ARGUMENT naming `field`. */
export function validateIPv6(value: unknown, field = 'address'): string {
  if (typeof value !== 'string' || !isIPv6(value)) {
    throw invalidArgument(field, `${JSON.stringify(value)} is not an IPv6 address`);
  }
  return formatIPv6(parseIPv6(value)!);
}

/** A dotted IPv4 address as an unsigned 32-bit number (the input must be valid). */
export function ipv4ToNumber(address: string): number {
  const [a, b, c, d] = address.split('.').map(Number) as [number, number, number, number];
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

/** An unsigned 32-bit number as a dotted IPv4 address. */
export function numberToIPv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

/** An IPv4 CIDR, parsed. `address` is the text before the slash (a host address or the network). */
export interface Ipv4Cidr {
  readonly address: string;
  readonly prefixLength: number;
  readonly network: string;
  readonly broadcast: string;
  /** Dotted netmask, e.g. 255.255.255.0: what the kernel `ip=` argument wants. */
  readonly netmask: string;
  /** network + 1: the gateway the host bridge holds. */
  readonly gateway: string;
  /** How many addresses a VM can take: all but network, gateway and broadcast. */
  readonly usableHosts: number;
}

/** Parses `a.b.c.d/n`; throws INVALID_ARGUMENT naming `field`. */
export function parseIPv4Cidr(value: unknown, field = 'cidr'): Ipv4Cidr {
  if (typeof value !== 'string') throw invalidArgument(field, 'must be a CIDR string such as 10.62.0.0/24');
  const match = /^([0-9.]+)\/(\d{1,2})$/.exec(value);
  if (!match || !isIPv4(match[1]) || Number(match[2]) > 32) {
    throw invalidArgument(field, `${JSON.stringify(value)} is not an IPv4 CIDR such as 10.62.0.0/24`);
  }
  const address = match[1];
  const prefixLength = Number(match[2]);
  const mask = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
  const network = (ipv4ToNumber(address) & mask) >>> 0;
  const broadcast = (network | (~mask >>> 0)) >>> 0;
  return {
    address,
    prefixLength,
    network: numberToIPv4(network),
    broadcast: numberToIPv4(broadcast),
    netmask: numberToIPv4(mask),
    gateway: numberToIPv4(network + 1),
    usableHosts: Math.max(0, broadcast - network - 2),
  };
}

/**
 * Parses a subnet VMs live in: /31 and /32 are rejected (no room for gateway and guests); so is anything larger
 * than /8, which is always a typo.
 */
export function parseVmSubnet(value: unknown, field = 'subnet'): Ipv4Cidr {
  const cidr = parseIPv4Cidr(value, field);
  if (cidr.prefixLength > 30) {
    throw invalidArgument(
      field,
      `/${cidr.prefixLength} leaves no room for a gateway and a VM; use /30 or larger`,
    );
  }
  if (cidr.prefixLength < 8)
    throw invalidArgument(field, `/${cidr.prefixLength} is too large; use /8 to /30`);
  return cidr;
}

/** True when `address` lies inside `cidr` (network and broadcast included). */
export function ipv4InCidr(address: string, cidr: Ipv4Cidr): boolean {
  const n = ipv4ToNumber(address);
  return n >= ipv4ToNumber(cidr.network) && n <= ipv4ToNumber(cidr.broadcast);
}

/** Returns `port` if it is an integer in 1–65535. */
export function validatePort(port: unknown, field = 'port'): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalidArgument(field, `${JSON.stringify(port)} is not a port number (an integer from 1 to 65535)`);
  }
  return port;
}

/**
 * Returns the MAC in lowercase colon form if it is a locally administered unicast address (second-lowest bit of
 * the first octet set, lowest bit clear), the only kind we may invent without colliding with a vendor's.
 */
export function validateMac(mac: unknown, field = 'mac'): string {
  if (typeof mac !== 'string' || !/^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/.test(mac)) {
    throw invalidArgument(field, `${JSON.stringify(mac)} is not a MAC address such as 52:54:00:12:34:56`);
  }
  const first = Number.parseInt(mac.slice(0, 2), 16);
  if (first & 1) throw invalidArgument(field, `${mac} is a multicast address`);
  if (!(first & 2))
    throw invalidArgument(field, `${mac} is not locally administered (set bit 0x02 of the first octet)`);
  return mac.toLowerCase();
}

/** Linux's minimum MTU for an IPv4 interface and the largest a bridge or TAP takes. */
export const MIN_MTU = 68;
/** The largest MTU `validateMtu` accepts. */
export const MAX_MTU = 65535;

/** Returns `mtu` if it is an integer from 68 to 65535. */
export function validateMtu(mtu: unknown, field = 'mtu'): number {
  if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < MIN_MTU || mtu > MAX_MTU) {
    throw invalidArgument(
      field,
      `${JSON.stringify(mtu)} is not an MTU (an integer from ${MIN_MTU} to ${MAX_MTU})`,
    );
  }
  return mtu;
}

/** The user and group that may open a TAP (`TapSpec.owner`). */
export interface TapOwner {
  readonly uid: number;
  readonly gid: number;
}

const isUnixId = (v: unknown): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 2 ** 32 - 1;

/** Returns `{ uid, gid }` if both are user/group ids (integers from 0 to 2³²-2; -1 means "unchanged" to chown). */
export function validateTapOwner(owner: unknown, field = 'owner'): TapOwner {
  if (typeof owner !== 'object' || owner === null) throw invalidArgument(field, 'must be { uid, gid }');
  const { uid, gid } = owner as { uid?: unknown; gid?: unknown };
  if (!isUnixId(uid)) throw invalidArgument(`${field}.uid`, `${JSON.stringify(uid)} is not a user id`);
  if (!isUnixId(gid)) throw invalidArgument(`${field}.gid`, `${JSON.stringify(gid)} is not a group id`);
  return { uid, gid };
}

/** An IPv6 CIDR, parsed; addresses in canonical (RFC 5952) text. */
export interface Ipv6Cidr {
  /** The text before the slash, canonical. */
  readonly address: string;
  readonly prefixLength: number;
  /** The address with the host bits cleared, canonical. */
  readonly network: string;
  /** The 8 groups of `network`. */
  readonly networkGroups: readonly number[];
}

/** Parses `addr/n` (n from 0 to 128); throws INVALID_ARGUMENT naming `field`. */
export function parseIPv6Cidr(value: unknown, field = 'cidr'): Ipv6Cidr {
  const match = typeof value === 'string' ? /^([0-9A-Fa-f:.]+)\/(\d{1,3})$/.exec(value) : null;
  const groups = match ? parseIPv6(match[1]!) : undefined;
  const prefixLength = match ? Number(match[2]) : Number.NaN;
  if (!match || !groups || !(prefixLength <= 128)) {
    throw invalidArgument(field, `${JSON.stringify(value)} is not an IPv6 CIDR such as fd00::1/64`);
  }
  const networkGroups = groups.map((group, i) => {
    const keep = Math.min(16, Math.max(0, prefixLength - i * 16));
    return keep === 0 ? 0 : group & ((0xffff << (16 - keep)) & 0xffff);
  });
  return {
    address: formatIPv6(groups),
    prefixLength,
    network: formatIPv6(networkGroups),
    networkGroups,
  };
}

const hostnamePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * Returns `hostname` if it is 1–64 bytes of `[A-Za-z0-9_.-]` starting with a letter or digit (64 is the kernel's
 * limit for `ip=`). It ends up on a kernel command line, where a space or `:` would inject options or fields.
 */
export function validateHostname(hostname: unknown, field = 'hostname'): string {
  if (typeof hostname !== 'string' || hostname.length > 64 || !hostnamePattern.test(hostname)) {
    throw invalidArgument(
      field,
      `${JSON.stringify(hostname)} is not a host name (letters, digits, '_', '.' and '-', starting with a letter or digit, at most 64 bytes)`,
    );
  }
  return hostname;
}
