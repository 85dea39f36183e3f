import { isIPv6 } from 'node:net';
import { GuestImageError } from './errors.js';

/**
 * The kernel-argument format between the manager and the guest init, version 1. The init script
 * (`init-script.ts`) checks the same rules in sh; a change to either side changes this number.
 */
export const GUEST_ARGS_VERSION = 1;

/** How every readiness line the guest init prints on the console starts. */
export const READY_PREFIX = 'myhv-guest: ready';

/** An address with its prefix length, e.g. `{ address: '10.62.0.5', prefixLength: 24 }`. */
export interface GuestAddress {
  readonly address: string;
  readonly prefixLength: number;
}

/** A virtio-fs share the guest mounts by `tag` at the absolute `path`. */
export interface GuestShare {
  readonly tag: string;
  readonly path: string;
}

/** What the manager tells the guest init on the kernel command line. */
export interface GuestArgs {
  readonly ip?: GuestAddress;
  /** IPv4 default gateway; needs `ip`. */
  readonly gateway?: string;
  /** Up to three name servers (IPv4 or IPv6), in order. */
  readonly dns?: readonly string[];
  /** MTU of eth0, 68–65535. */
  readonly mtu?: number;
  readonly hostname?: string;
  readonly ip6?: GuestAddress;
  /** IPv6 default gateway; needs `ip6`. */
  readonly gateway6?: string;
  readonly shares?: readonly GuestShare[];
  /** Run with `sh -c` in the guest; without one the guest starts a shell on the console. */
  readonly command?: string;
}

/** What a readiness line says: the configured IPv4 address (if any) and the tags of the mounted shares. */
export interface ReadyLine {
  readonly ip?: string;
  readonly shares: readonly string[];
}

const IPV4_OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]\\d|\\d)';
const IPV4 = new RegExp(`^${IPV4_OCTET}(?:\\.${IPV4_OCTET}){3}$`);
const PREFIX4 = /^(?:\d|[12]\d|3[0-2])$/;
const PREFIX6 = /^(?:\d|[1-9]\d|1[01]\d|12[0-8])$/;
const MTU = /^[1-9]\d{1,4}$/;
const HOSTNAME_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const TAG = /^[A-Za-z0-9_.-]{1,36}$/;
const PATH_SEGMENT = /^[A-Za-z0-9_.@+=,-]+$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const MAX_DNS = 3; // resolvers read at most three nameserver lines
const MAX_HOSTNAME = 64; // the kernel's limit for the UTS name
const MAX_PATH = 255;

const KEYS = {
  ip: 'myhv.ip',
  gateway: 'myhv.gw',
  dns: 'myhv.dns',
  mtu: 'myhv.mtu',
  hostname: 'myhv.hostname',
  ip6: 'myhv.ip6',
  gateway6: 'myhv.gw6',
  shares: 'myhv.share',
  command: 'myhv.cmd',
} as const satisfies Record<keyof GuestArgs, string>;

type Field = keyof GuestArgs;

function invalid(field: string, message: string, extra: Record<string, unknown> = {}): GuestImageError {
  return new GuestImageError('INVALID_ARGUMENT', `${field}: ${message}`, { details: { field, ...extra } });
}

function isIPv4(value: string): boolean {
  return IPV4.test(value);
}

/** Plain IPv6 only: no embedded IPv4, no zone, so the guest's character check stays simple. */
function isPlainIPv6(value: string): boolean {
  return /^[0-9A-Fa-f:]+$/.test(value) && isIPv6(value);
}

function checkAddress(field: Field, value: GuestAddress, family: 4 | 6): void {
  const ok = family === 4 ? isIPv4(value.address) : isPlainIPv6(value.address);
  if (!ok) throw invalid(field, `not an IPv${family} address: ${JSON.stringify(value.address)}`);
  const max = family === 4 ? 32 : 128;
  if (!Number.isInteger(value.prefixLength) || value.prefixLength < 0 || value.prefixLength > max) {
    throw invalid(field, `prefix length must be an integer 0–${max}: ${value.prefixLength}`);
  }
}

function checkHostname(value: string): void {
  const ok = value.length <= MAX_HOSTNAME && value.split('.').every((label) => HOSTNAME_LABEL.test(label));
  if (!ok)
    throw invalid(
      'hostname',
      `not a hostname of at most ${MAX_HOSTNAME} characters: ${JSON.stringify(value)}`,
    );
}

/** Absolute, normalised (no `.`/`..`/empty segments, no trailing `/`), not `/`, from a safe character set. */
function checkSharePath(value: string, index: number): void {
  const segments = value.split('/').slice(1);
  const ok =
    value.startsWith('/') &&
    value.length <= MAX_PATH &&
    segments.every((s) => s !== '.' && s !== '..' && PATH_SEGMENT.test(s));
  if (!ok) {
    throw invalid(
      'shares',
      `path must be absolute and normalised, without spaces or quotes: ${JSON.stringify(value)}`,
      {
        index,
      },
    );
  }
}

function checkShares(shares: readonly GuestShare[]): void {
  const tags = new Set<string>();
  const paths = new Set<string>();
  shares.forEach((share, index) => {
    if (!TAG.test(share.tag))
      throw invalid('shares', `tag must match [A-Za-z0-9_.-]{1,36}: ${JSON.stringify(share.tag)}`, { index });
    checkSharePath(share.path, index);
    if (tags.has(share.tag)) throw invalid('shares', `duplicate tag ${share.tag}`, { index });
    if (paths.has(share.path)) throw invalid('shares', `duplicate path ${share.path}`, { index });
    tags.add(share.tag);
    paths.add(share.path);
  });
}

function checkCommand(value: string): void {
  // Lone surrogates would not survive UTF-8; NUL cannot live in a shell variable.
  if (value === '' || Buffer.from(value, 'utf8').toString('utf8') !== value || value.includes('\0')) {
    throw invalid('command', 'must be non-empty well-formed text without NUL');
  }
}

/** Throws INVALID_ARGUMENT (details.field names the GuestArgs field) unless the guest init would accept `a`. */
export function validateGuestArgs(a: GuestArgs): void {
  if (a.ip !== undefined) checkAddress('ip', a.ip, 4);
  if (a.gateway !== undefined) {
    if (!isIPv4(a.gateway)) throw invalid('gateway', `not an IPv4 address: ${JSON.stringify(a.gateway)}`);
    if (a.ip === undefined) throw invalid('gateway', 'needs ip');
  }
  if (a.dns !== undefined) {
    if (a.dns.length === 0 || a.dns.length > MAX_DNS) throw invalid('dns', `must list 1–${MAX_DNS} servers`);
    for (const server of a.dns) {
      if (!isIPv4(server) && !isPlainIPv6(server))
        throw invalid('dns', `not an IP address: ${JSON.stringify(server)}`);
    }
  }
  if (a.mtu !== undefined && !(Number.isInteger(a.mtu) && a.mtu >= 68 && a.mtu <= 65535)) {
    throw invalid('mtu', `must be an integer 68–65535: ${a.mtu}`);
  }
  if (a.hostname !== undefined) checkHostname(a.hostname);
  if (a.ip6 !== undefined) checkAddress('ip6', a.ip6, 6);
  if (a.gateway6 !== undefined) {
    if (!isPlainIPv6(a.gateway6))
      throw invalid('gateway6', `not an IPv6 address: ${JSON.stringify(a.gateway6)}`);
    if (a.ip6 === undefined) throw invalid('gateway6', 'needs ip6');
  }
  if (a.shares !== undefined) checkShares(a.shares);
  if (a.command !== undefined) checkCommand(a.command);
}

/**
 * The kernel-command-line tokens for `a`, space-separated, in a fixed order (validated first; throws
 * INVALID_ARGUMENT). Unset fields are left out; the result is '' when nothing is set.
 */
export function formatGuestArgs(a: GuestArgs): string {
  validateGuestArgs(a);
  const tokens: string[] = [];
  const add = (field: Field, value: string) => tokens.push(`${KEYS[field]}=${value}`);
  if (a.ip) add('ip', `${a.ip.address}/${a.ip.prefixLength}`);
  if (a.gateway) add('gateway', a.gateway);
  if (a.dns) add('dns', a.dns.join(','));
  if (a.mtu !== undefined) add('mtu', String(a.mtu));
  if (a.hostname) add('hostname', a.hostname);
  if (a.ip6) add('ip6', `${a.ip6.address}/${a.ip6.prefixLength}`);
  if (a.gateway6) add('gateway6', a.gateway6);
  for (const share of a.shares ?? []) add('shares', `${share.tag}:${share.path}`);
  if (a.command !== undefined) add('command', Buffer.from(a.command, 'utf8').toString('base64url'));
  return tokens.join(' ');
}

function parseAddress(field: Field, value: string): GuestAddress {
  const slash = value.indexOf('/');
  const prefix = value.slice(slash + 1);
  const pattern = field === 'ip' ? PREFIX4 : PREFIX6;
  if (slash < 0 || !pattern.test(prefix))
    throw invalid(field, `expected ADDRESS/PREFIX: ${JSON.stringify(value)}`);
  return { address: value.slice(0, slash), prefixLength: Number(prefix) };
}

function parseCommand(value: string): string {
  // Only the canonical unpadded encoding that formatGuestArgs writes.
  const bytes = Buffer.from(value, 'base64url');
  if (!BASE64URL.test(value) || bytes.toString('base64url') !== value) {
    throw invalid('command', 'not unpadded base64url');
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error) {
    throw new GuestImageError('INVALID_ARGUMENT', 'command: not UTF-8', {
      cause: error,
      details: { field: 'command' },
    });
  }
}

/**
 * The GuestArgs in a whole kernel command line. Tokens not starting with `myhv.` are ignored, and so are
 * unknown `myhv.` keys (a newer manager may add some). Throws INVALID_ARGUMENT on a bad value, a key
 * given twice (except `myhv.share`), or a value the guest init would refuse.
 */
export function parseGuestArgs(cmdline: string): GuestArgs {
  const fields = Object.fromEntries(Object.entries(KEYS).map(([field, key]) => [key, field as Field]));
  const out: { -readonly [K in keyof GuestArgs]: GuestArgs[K] } = {};
  const shares: GuestShare[] = [];
  for (const token of cmdline.split(/\s+/)) {
    if (!token.startsWith('myhv.')) continue;
    const eq = token.indexOf('=');
    const key = eq < 0 ? token : token.slice(0, eq);
    const field = Object.hasOwn(fields, key) ? fields[key] : undefined;
    if (field === undefined) continue;
    const value = token.slice(eq + 1);
    if (eq < 0 || value === '') throw invalid(field, `${key} needs a value`);
    if (field !== 'shares' && out[field] !== undefined) throw invalid(field, `${key} given twice`);
    switch (field) {
      case 'ip':
      case 'ip6':
        out[field] = parseAddress(field, value);
        break;
      case 'gateway':
      case 'gateway6':
      case 'hostname':
        out[field] = value;
        break;
      case 'dns':
        out.dns = value.split(',');
        break;
      case 'mtu':
        if (!MTU.test(value)) throw invalid('mtu', `not a decimal number: ${JSON.stringify(value)}`);
        out.mtu = Number(value);
        break;
      case 'shares': {
        const colon = value.indexOf(':');
        if (colon < 0) throw invalid('shares', `expected TAG:/PATH: ${JSON.stringify(value)}`);
        shares.push({ tag: value.slice(0, colon), path: value.slice(colon + 1) });
        break;
      }
      case 'command':
        out.command = parseCommand(value);
        break;
    }
  }
  if (shares.length > 0) out.shares = shares;
  validateGuestArgs(out);
  return out;
}

/**
 * What a console line `myhv-guest: ready ip=<address|none> shares=<tag,…|none>` says, or undefined for any
 * other line (trailing `\r` allowed). Unknown `key=value` fields after these are ignored (a newer guest may
 * add some); a line with the prefix but without readable `ip`/`shares` throws INVALID_ARGUMENT.
 */
export function parseReadyLine(line: string): ReadyLine | undefined {
  const text = line.replace(/[\r\n]+$/, '');
  if (text !== READY_PREFIX && !text.startsWith(`${READY_PREFIX} `)) return undefined;
  const fields = new Map<string, string>();
  for (const part of text.slice(READY_PREFIX.length).split(' ')) {
    const eq = part.indexOf('=');
    if (eq > 0 && !fields.has(part.slice(0, eq))) fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const ip = fields.get('ip');
  const shares = fields.get('shares');
  if (ip === undefined || (ip !== 'none' && !isIPv4(ip)))
    throw invalid('line', `no readable ip= in ${JSON.stringify(text)}`);
  const tags = shares === 'none' ? [] : (shares?.split(',') ?? []);
  if (shares === undefined || (shares !== 'none' && !tags.every((t) => TAG.test(t)))) {
    throw invalid('line', `no readable shares= in ${JSON.stringify(text)}`);
  }
  return { ...(ip === 'none' ? {} : { ip }), shares: tags };
}
