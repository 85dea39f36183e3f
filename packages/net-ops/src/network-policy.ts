import { z } from 'zod';
import { invalidArgument } from './errors.js';
import { parseIPv4Cidr } from './validation.js';

const port = z.number().int().min(1).max(65535);

/** One egress allowance: a destination CIDR, optionally only some ports of one protocol (both TCP and UDP without it). */
export const egressRuleSchema = z.strictObject({
  cidr: z.string().refine((value) => {
    try {
      parseIPv4Cidr(value);
      return true;
    } catch {
      return false;
    }
  }, 'must be an IPv4 CIDR such as 192.0.2.0/24'),
  ports: z.array(port).min(1).max(64).optional(),
  proto: z.enum(['tcp', 'udp', 'icmp']).optional(),
});

/** Who a VM may reach. Enforced outside the guest (it cannot change it); backends without it reject all but the default. */
export const networkPolicySchema = z.strictObject({
  /**
   * `vm` (the default of backends that isolate): no other VM's address, no host address but the gateway, and on
   * the gateway only the ports the host offers (DNS, ICMP echo). `none`: plain bridge semantics.
   */
  isolation: z.enum(['vm', 'none']).optional(),
  /** Where the guest may send traffic outside its subnet; answers to connections made to it always pass. */
  egress: z.union([z.enum(['allow-all', 'deny-all']), z.array(egressRuleSchema).max(64)]).optional(),
});

/** One egress allowance: `{ cidr, ports?, proto? }`. */
export type EgressRule = z.infer<typeof egressRuleSchema>;
/** A VM's isolation and egress: `{ isolation?: 'vm' | 'none', egress?: 'allow-all' | 'deny-all' | EgressRule[] }`. */
export type VmNetworkPolicy = z.infer<typeof networkPolicySchema>;

/** Parses an untrusted policy; INVALID_ARGUMENT naming the first bad field (`policy.egress.0.cidr`, …). */
export function parseNetworkPolicy(input: unknown, field = 'policy'): VmNetworkPolicy {
  const result = networkPolicySchema.safeParse(input);
  if (result.success) {
    const egress = result.data.egress;
    if (Array.isArray(egress)) {
      egress.forEach((rule, i) => {
        if (rule.ports && rule.proto === 'icmp')
          throw invalidArgument(`${field}.egress.${i}.ports`, 'ICMP has no ports');
      });
    }
    return result.data;
  }
  const issue = result.error.issues[0]!;
  const path = [field, ...issue.path.map(String)].join('.');
  throw invalidArgument(path, issue.message, result.error);
}

/** True when the policy asks for nothing beyond a plain bridge (no isolation, egress allow-all). */
export function isOpenPolicy(policy: VmNetworkPolicy | undefined): boolean {
  return (policy?.isolation ?? 'none') === 'none' && (policy?.egress ?? 'allow-all') === 'allow-all';
}

/** Packets a backend dropped for one VM under its policy. */
export interface VmPolicyCounters {
  /** Outbound packets the egress policy refused. */
  readonly egressDenied: number;
  /** Packets refused by isolation: to another VM, or to a host address or port not offered. */
  readonly isolationDenied: number;
}
