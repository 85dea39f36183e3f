import { type BridgeSpec, invalidArgument, type PortForwardRule, type TapSpec } from '@my-hypervisor/net-ops';
import type { z } from 'zod';
import type { BridgeAddParams, CreateTapParams, ForwardParams } from './methods.js';

/**
 * Parses wire params with their zod schema; the first issue becomes INVALID_ARGUMENT naming the field as
 * `fieldName` spells it (API names on the client, wire names on the server).
 */
export function parseWireParams<T>(
  schema: z.ZodType<T>,
  value: unknown,
  fieldName: (path: readonly PropertyKey[]) => string,
): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const keys = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
  throw invalidArgument(fieldName(issue.path), `${issue.message}${keys}`, result.error);
}

/** `host_port` → `hostPort`, under an optional prefix (`rule.hostPort`): the name our API gives a wire field. */
export function apiFieldName(path: readonly PropertyKey[], prefix?: string): string {
  const parts = path.map((part) => String(part).replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()));
  const all = prefix === undefined ? parts : [prefix, ...parts];
  return all.length === 0 ? 'params' : all.join('.');
}

/** The wire field name as sent (`owner.uid`), for errors a server reports. */
export function wireFieldName(path: readonly PropertyKey[]): string {
  return path.length === 0 ? 'params' : path.map(String).join('.');
}

export function bridgeSpecToParams(spec: BridgeSpec): BridgeAddParams {
  return {
    name: spec.name,
    address: spec.address,
    ...(spec.mtu === undefined ? {} : { mtu: spec.mtu }),
    ...(spec.ipv6Address === undefined ? {} : { ipv6_address: spec.ipv6Address }),
  };
}

export function bridgeParamsToSpec(params: BridgeAddParams): BridgeSpec {
  return {
    name: params.name,
    address: params.address,
    ...(params.mtu === undefined ? {} : { mtu: params.mtu }),
    ...(params.ipv6_address === undefined ? {} : { ipv6Address: params.ipv6_address }),
  };
}

export function tapSpecToParams(spec: TapSpec): Partial<CreateTapParams> {
  return {
    name: spec.name,
    ...(spec.bridge === undefined ? {} : { bridge: spec.bridge }),
    ...(spec.mtu === undefined ? {} : { mtu: spec.mtu }),
    ...(spec.multiQueue === undefined ? {} : { multi_queue: spec.multiQueue }),
    ...(spec.owner === undefined ? {} : { owner: { uid: spec.owner.uid, gid: spec.owner.gid } }),
  };
}

export function tapParamsToSpec(params: CreateTapParams): TapSpec & { bridge: string } {
  return {
    name: params.name,
    bridge: params.bridge,
    ...(params.mtu === undefined ? {} : { mtu: params.mtu }),
    ...(params.multi_queue === undefined ? {} : { multiQueue: params.multi_queue }),
    ...(params.owner === undefined ? {} : { owner: params.owner }),
  };
}

export function ruleToForwardParams(rule: PortForwardRule): ForwardParams {
  return {
    protocol: rule.protocol,
    host_port: rule.hostPort,
    guest_ip: rule.guestIp,
    guest_port: rule.guestPort,
    ...(rule.hostIp === undefined ? {} : { host_ip: rule.hostIp }),
    ...(rule.owner === undefined ? {} : { owner: rule.owner }),
  };
}

export function forwardParamsToRule(params: ForwardParams): PortForwardRule {
  return {
    protocol: params.protocol,
    hostPort: params.host_port,
    guestIp: params.guest_ip,
    guestPort: params.guest_port,
    ...(params.host_ip === undefined ? {} : { hostIp: params.host_ip }),
    ...(params.owner === undefined ? {} : { owner: params.owner }),
  };
}
