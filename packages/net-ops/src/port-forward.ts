import { z } from 'zod';
import { invalidArgument } from './errors.js';
import { isIPv4 } from './validation.js';

const port = z.number().int().min(1).max(65535);
const ipv4 = z.string().refine(isIPv4, 'must be an IPv4 address');

/** The zod schema of a port-forward rule: the single definition shared by backends, servers and the CLI. */
export const portForwardRuleSchema = z.strictObject({
  protocol: z.enum(['tcp', 'udp']),
  hostPort: port,
  guestIp: ipv4,
  guestPort: port,
  /** Only traffic to this host address is forwarded; any host address when omitted. */
  hostIp: ipv4.optional(),
  /** Who installed it (a VM id): kept and listed, never part of the match. */
  owner: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9_.:-]+$/, 'may only contain letters, digits and _ . : -')
    .optional(),
});

/** A host port forwarded to a guest address. Two rules with the same protocol and host port conflict. */
export type PortForwardRule = z.infer<typeof portForwardRuleSchema>;

/**
 * Parses an untrusted rule; throws INVALID_ARGUMENT naming the first bad field (`rule.hostPort`, …). Unknown
 * fields are rejected too, so a typo never becomes a forward nobody asked for.
 */
export function parsePortForwardRule(input: unknown, field = 'rule'): PortForwardRule {
  const result = portForwardRuleSchema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = [field, ...issue.path.map(String)].join('.');
  const keys = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
  throw invalidArgument(path, `${issue.message}${keys}`, result.error);
}

/** The identity of a forward on a host: one rule per protocol and host port. */
export function portForwardKey(rule: Pick<PortForwardRule, 'protocol' | 'hostPort'>): string {
  return `${rule.protocol}/${rule.hostPort}`;
}

/** True when two rules forward the same traffic to the same place (owner is not compared). */
export function samePortForward(a: PortForwardRule, b: PortForwardRule): boolean {
  return (
    a.protocol === b.protocol &&
    a.hostPort === b.hostPort &&
    a.guestIp === b.guestIp &&
    a.guestPort === b.guestPort &&
    (a.hostIp ?? null) === (b.hostIp ?? null)
  );
}

/** What `NatOps.addPortForward` did: whether it installed the rule. */
export interface AddPortForwardResult {
  /** False when the identical rule was already installed. */
  readonly created: boolean;
}

/** What `NatOps.removePortForward` did: whether a forward was there to remove. */
export interface RemovePortForwardResult {
  /** False when no forward held that protocol and host port. */
  readonly existed: boolean;
}
