import { invalidValue } from './errors.js';

/** A forward as typed on the command line, before the spec schema checks ranges and addresses. */
export interface ForwardArg {
  protocol?: string;
  hostPort: number;
  guestPort: number;
  hostIp?: string;
}

const FORWARD_HINT = 'write [hostIp:]hostPort:guestPort[/tcp|udp], e.g. 8080:80 or 127.0.0.1:5353:53/udp';

function portNumber(text: string, value: string, field: string): number {
  // Digits only: `080x` or `1e3` must not become a port by accident. Ranges are the schema's job.
  if (!/^\d{1,6}$/.test(text))
    throw invalidValue(
      field,
      `${JSON.stringify(value)}: ${JSON.stringify(text)} is not a port number`,
      FORWARD_HINT,
    );
  return Number(text);
}

/** `[hostIp:]hostPort:guestPort[/proto]` (docker's `-p` syntax). */
export function parseForwardArg(value: string, field = '--forward'): ForwardArg {
  const slash = value.lastIndexOf('/');
  const protocol = slash >= 0 ? value.slice(slash + 1) : undefined;
  const body = slash >= 0 ? value.slice(0, slash) : value;
  if (protocol !== undefined && protocol !== 'tcp' && protocol !== 'udp') {
    throw invalidValue(field, `${JSON.stringify(value)}: protocol must be tcp or udp`, FORWARD_HINT);
  }
  const parts = body.split(':');
  if (parts.length !== 2 && parts.length !== 3) {
    throw invalidValue(
      field,
      `${JSON.stringify(value)} is not [hostIp:]hostPort:guestPort[/proto]`,
      FORWARD_HINT,
    );
  }
  const [a, b, c] = parts as [string, string, string | undefined];
  const forward: ForwardArg =
    c === undefined
      ? { hostPort: portNumber(a, value, field), guestPort: portNumber(b, value, field) }
      : { hostIp: a, hostPort: portNumber(b, value, field), guestPort: portNumber(c, value, field) };
  if (protocol) forward.protocol = protocol;
  return forward;
}

/** `hostPort[/proto]` for `forward rm`. */
export function parseHostPortArg(
  value: string,
  field = 'hostPort',
): { protocol: 'tcp' | 'udp'; hostPort: number } {
  const match = /^(\d{1,5})(?:\/(tcp|udp))?$/.exec(value);
  const port = match ? Number(match[1]) : Number.NaN;
  if (!match || port < 1 || port > 65535) {
    throw invalidValue(
      field,
      `${JSON.stringify(value)} is not hostPort[/tcp|udp] with a port from 1 to 65535`,
      'e.g. `myhv forward rm web 8080` or `myhv forward rm dns 5353/udp`',
    );
  }
  return { protocol: (match[2] as 'tcp' | 'udp' | undefined) ?? 'tcp', hostPort: port };
}
