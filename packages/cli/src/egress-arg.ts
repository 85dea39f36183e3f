import {
  type EgressRule,
  NetOpsError,
  parseNetworkPolicy,
  type VmNetworkPolicy,
} from '@my-hypervisor/net-ops';
import { invalidValue } from './errors.js';

export const EGRESS_HINT =
  'write allow-all, deny-all, or rules CIDR[:tcp|udp|icmp][:PORT[+PORT…]] separated by commas, ' +
  'e.g. --egress 10.0.0.0/8,192.0.2.10:tcp:80+443,198.51.100.53:udp:53';

const PROTOCOLS = new Set(['tcp', 'udp', 'icmp']);

/** A rule as typed: `CIDR[:PROTO][:PORTS]`; a bare address is a /32. Ranges and address rules are the schema's. */
function ruleArg(text: string, field: string): EgressRule {
  const bad = (why: string) => invalidValue(field, `${JSON.stringify(text)}: ${why}`, EGRESS_HINT);
  const [target = '', ...rest] = text.split(':');
  if (target === '') throw bad('a rule starts with an IPv4 address or CIDR');
  if (rest.length > 2) throw bad('a rule is CIDR[:PROTO][:PORTS]');
  const rule: { cidr: string; proto?: 'tcp' | 'udp' | 'icmp'; ports?: number[] } = {
    cidr: target.includes('/') ? target : `${target}/32`,
  };
  rest.forEach((part, i) => {
    if (PROTOCOLS.has(part)) {
      if (i > 0 || rule.ports) throw bad('the protocol comes before the ports');
      rule.proto = part as 'tcp' | 'udp' | 'icmp';
      return;
    }
    // Digits only: `1e3` or `0x50` must not become a port by accident.
    if (!/^\d{1,5}(\+\d{1,5})*$/.test(part))
      throw bad(`${JSON.stringify(part)} is neither tcp, udp, icmp nor ports (PORT[+PORT…])`);
    if (rule.ports) throw bad('one list of ports per rule (join them with +)');
    rule.ports = part.split('+').map(Number);
  });
  return rule;
}

/**
 * `--egress` values (the flag may repeat): `allow-all`, `deny-all`, or comma-separated rules (see `EGRESS_HINT`).
 * Every rule is checked here, so a bad one fails before anything is made, naming the flag.
 */
export function parseEgressArg(values: readonly string[], field = '--egress'): VmNetworkPolicy['egress'] {
  const items = values.flatMap((value) => value.split(',').map((item) => item.trim()));
  if (items.length === 0 || items.includes(''))
    throw invalidValue(field, 'an empty rule (two commas, or a comma at the end?)', EGRESS_HINT);
  const keyword = items.find((item) => item === 'allow-all' || item === 'deny-all');
  let egress: VmNetworkPolicy['egress'];
  if (keyword !== undefined) {
    if (items.length > 1)
      throw invalidValue(field, `${keyword} cannot be combined with other rules`, EGRESS_HINT);
    egress = keyword as 'allow-all' | 'deny-all';
  } else {
    egress = items.map((item) => ruleArg(item, field));
  }
  try {
    return parseNetworkPolicy({ egress }, 'egress').egress;
  } catch (error) {
    if (!NetOpsError.isInstance(error) || error.code !== 'INVALID_ARGUMENT') throw error;
    // `egress.2.cidr: …` → the 3rd rule, as typed.
    const index = /^egress\.(\d+)/.exec(String(error.details.field ?? ''))?.[1];
    const which = index === undefined ? '' : `${JSON.stringify(items[Number(index)])}: `;
    throw invalidValue(field, `${which}${error.message.replace(/^[^:]*: /, '')}`, EGRESS_HINT, error);
  }
}

/** `--isolation vm|none`. */
export function parseIsolationArg(value: string, field = '--isolation'): 'vm' | 'none' {
  if (value === 'vm' || value === 'none') return value;
  throw invalidValue(
    field,
    `${JSON.stringify(value)} is not vm or none`,
    'vm: no other VM and no host address but the gateway; none: a plain bridge',
  );
}

/** An egress policy as `--egress` takes it: `deny-all`, or `10.0.0.0/8, 192.0.2.10/32:tcp:80+443`. */
export function formatEgress(egress: NonNullable<VmNetworkPolicy['egress']>): string {
  if (typeof egress === 'string') return egress;
  if (egress.length === 0) return 'none allowed (no rules)';
  return egress
    .map((rule) =>
      [rule.cidr, ...(rule.proto ? [rule.proto] : []), ...(rule.ports ? [rule.ports.join('+')] : [])].join(
        ':',
      ),
    )
    .join(', ');
}
