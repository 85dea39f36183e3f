import { MAX_MTU, MIN_MTU } from '@my-hypervisor/net-ops';
import { z } from 'zod';
import { mosnetErrorCodes } from './rpc-errors.js';

/** The mosnet methods this backend calls (the last two only when `rpc.discover` lists them). */
export const mosnetMethods = {
  bridgeAdd: 'mosnet.bridge.add',
  createTap: 'mosnet.vm.create_tap',
  deleteTap: 'mosnet.vm.delete_tap',
  addForward: 'mosnet.nat.add_forward',
  removeForward: 'mosnet.nat.remove_forward',
  listBridgePorts: 'mosnet.bridge.list_ports',
  listForwards: 'mosnet.nat.list_forwards',
} as const;

/** The name of a mosnet method this backend calls (`mosnet.bridge.add`, …). */
export type MosnetMethodName = (typeof mosnetMethods)[keyof typeof mosnetMethods];

/** The discovery method every OpenRPC server answers with its document. */
export const DISCOVER_METHOD = 'rpc.discover';

// Wire field schemas. Each one is expressible in JSON Schema (pattern, bounds, no refinements), so the OpenRPC
// document derived from them says exactly what the server enforces.
// The same rule as net-ops' validateInterfaceName, as one pattern so the document carries it.
const interfaceName = z
  .string()
  .regex(
    /^(?!-)(?!(?:\.|\.\.|all|default)$)[A-Za-z0-9_.-]{1,15}$/,
    'must be a Linux interface name: 1–15 of A-Z a-z 0-9 _ . -, not starting with -, not . .. all default',
  )
  .describe(
    'A Linux interface name: 1–15 bytes of [A-Za-z0-9_.-], not starting with "-", not ".", "..", "all" or "default".',
  );
const ipv4Octet = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const ipv4Text = `${ipv4Octet}(\\.${ipv4Octet}){3}`;
const ipv4Cidr = z
  .string()
  .regex(
    new RegExp(`^${ipv4Text}/(3[0-2]|[12]?\\d)$`),
    'must be an IPv4 address with its prefix length, e.g. 10.62.0.1/24',
  )
  .describe('An IPv4 address with its prefix length, e.g. 10.62.0.1/24.');

/**
 * RFC 4291 IPv6 text (what net-ops' isIPv6 accepts) as one pattern: 8 groups, or `::` standing for at least one
 * zero group, optionally ending in a dotted IPv4 address that fills the last two groups.
 */
function ipv6Pattern(): string {
  const group = '[0-9A-Fa-f]{1,4}';
  const groups = (count: number) =>
    count === 0 ? '' : count === 1 ? group : `${group}(:${group}){${count - 1}}`;
  const upTo = (unit: string, max: number) =>
    max === 0 ? '' : max === 1 ? `(${unit})?` : `(${unit}){0,${max}}`;
  const alternatives = [`(${group}:){7}${group}`, `(${group}:){6}${ipv4Text}`];
  for (let head = 0; head <= 7; head++) {
    const rest = 7 - head;
    alternatives.push(`${groups(head)}::${rest === 0 ? '' : `(${group}${upTo(`:${group}`, rest - 1)})?`}`);
    if (rest >= 2) alternatives.push(`${groups(head)}::${upTo(`${group}:`, rest - 2)}${ipv4Text}`);
  }
  return `(${alternatives.join('|')})`;
}
const ipv6Cidr = z
  .string()
  .regex(
    new RegExp(`^${ipv6Pattern()}/(12[0-8]|1[01]\\d|[1-9]?\\d)$`),
    'must be an IPv6 address with its prefix length',
  )
  .describe('An IPv6 address with its prefix length, e.g. 4a1:2b3::1/64.');
const ipv4 = z.ipv4({ message: 'must be an IPv4 address' });
const mtu = z.number().int().min(MIN_MTU).max(MAX_MTU).describe('MTU in bytes.');
const port = z.number().int().min(1).max(65535);
const uidOrGid = z.number().int().min(0).max(4_294_967_294);
const forwardOwner = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_.:-]+$/, 'may only contain letters, digits and _ . : -')
  .describe('Who installed the forward (a VM id): kept and listed, never part of the match.');

export const bridgeAddParamsSchema = z.strictObject({
  name: interfaceName,
  address: ipv4Cidr.describe('The gateway address the bridge holds, with prefix; replaces a different one.'),
  mtu: mtu.optional(),
  ipv6_address: ipv6Cidr.optional(),
});
export const bridgeAddResultSchema = z.object({
  name: z.string(),
  created: z.boolean().describe('False when the bridge already existed and was brought to the spec.'),
});

export const createTapParamsSchema = z.strictObject({
  name: interfaceName,
  bridge: interfaceName.describe('The bridge the TAP is attached to; it ends up attached and up.'),
  mtu: mtu.optional(),
  multi_queue: z.boolean().optional().describe('Create with IFF_MULTI_QUEUE.'),
  owner: z
    .strictObject({ uid: uidOrGid, gid: uidOrGid })
    .optional()
    .describe('Only this uid/gid may open the TAP.'),
});
export const createTapResultSchema = z.object({
  name: z.string(),
  created: z.boolean().describe('False when a TAP of that name and queue mode existed and was adopted.'),
});

export const deleteTapParamsSchema = z.strictObject({ name: interfaceName });
export const deleteTapResultSchema = z.object({
  name: z.string(),
  existed: z.boolean().describe('False when there was nothing to delete.'),
});

export const forwardParamsSchema = z.strictObject({
  protocol: z.enum(['tcp', 'udp']),
  host_port: port,
  guest_ip: ipv4,
  guest_port: port,
  host_ip: ipv4.optional().describe('Only traffic to this host address is forwarded; any when omitted.'),
  owner: forwardOwner.optional(),
});
export const addForwardResultSchema = z.object({
  created: z.boolean().describe('False when the identical forward was already installed.'),
});
export const removeForwardResultSchema = z.object({
  existed: z.boolean().describe('False when no forward held that protocol and host port.'),
});

export const listBridgePortsParamsSchema = z.strictObject({ bridge: interfaceName });
export const listBridgePortsResultSchema = z.object({ ports: z.array(z.object({ name: z.string() })) });

export const listForwardsParamsSchema = z.strictObject({});
// Results are read leniently (extra fields ignored) so a newer daemon still answers an older client.
export const listForwardsResultSchema = z.object({ forwards: z.array(z.object(forwardParamsSchema.shape)) });

export type BridgeAddParams = z.infer<typeof bridgeAddParamsSchema>;
export type CreateTapParams = z.infer<typeof createTapParamsSchema>;
export type DeleteTapParams = z.infer<typeof deleteTapParamsSchema>;
export type ForwardParams = z.infer<typeof forwardParamsSchema>;
export type ListBridgePortsParams = z.infer<typeof listBridgePortsParamsSchema>;

/** One method of the contract: its schemas, and what the OpenRPC document says about it. */
export interface MosnetMethodDefinition {
  readonly name: MosnetMethodName;
  readonly summary: string;
  readonly params: z.ZodObject;
  readonly result: z.ZodType;
  readonly resultName: string;
  /** Called only when `rpc.discover` lists it; a daemon without it is still complete. */
  readonly optional: boolean;
  /** Server-range error codes the method can answer, besides -32601/-32602/-32000. */
  readonly errors: readonly number[];
}

const { NOT_FOUND, ALREADY_EXISTS, CONFLICT, PERMISSION_DENIED, UNSUPPORTED } = mosnetErrorCodes;

/** Every method of the contract, in document order. The client, the server and the document share these. */
export const mosnetMethodDefinitions: readonly MosnetMethodDefinition[] = [
  {
    name: mosnetMethods.bridgeAdd,
    summary: 'Create the bridge if missing, set its gateway address (and MTU, IPv6 address), bring it up.',
    params: bridgeAddParamsSchema,
    result: bridgeAddResultSchema,
    resultName: 'bridge',
    optional: false,
    errors: [CONFLICT, PERMISSION_DENIED, UNSUPPORTED],
  },
  {
    name: mosnetMethods.createTap,
    summary: 'Create a TAP, attach it to the bridge and bring it up, as one step.',
    params: createTapParamsSchema,
    result: createTapResultSchema,
    resultName: 'tap',
    optional: false,
    errors: [NOT_FOUND, ALREADY_EXISTS, CONFLICT, PERMISSION_DENIED, UNSUPPORTED],
  },
  {
    name: mosnetMethods.deleteTap,
    summary: 'Delete a TAP; a missing one is existed: false.',
    params: deleteTapParamsSchema,
    result: deleteTapResultSchema,
    resultName: 'tap',
    optional: false,
    errors: [CONFLICT, PERMISSION_DENIED],
  },
  {
    name: mosnetMethods.addForward,
    summary: 'Forward a host port to a guest address; the identical forward again is created: false.',
    params: forwardParamsSchema,
    result: addForwardResultSchema,
    resultName: 'forward',
    optional: false,
    errors: [CONFLICT, PERMISSION_DENIED, UNSUPPORTED],
  },
  {
    name: mosnetMethods.removeForward,
    summary: 'Remove the forward on the protocol and host port; CONFLICT if it targets another guest.',
    params: forwardParamsSchema,
    result: removeForwardResultSchema,
    resultName: 'forward',
    optional: false,
    errors: [CONFLICT, PERMISSION_DENIED],
  },
  {
    name: mosnetMethods.listBridgePorts,
    summary: 'The interfaces attached to a bridge (optional: used only when rpc.discover lists it).',
    params: listBridgePortsParamsSchema,
    result: listBridgePortsResultSchema,
    resultName: 'ports',
    optional: true,
    errors: [NOT_FOUND, PERMISSION_DENIED],
  },
  {
    name: mosnetMethods.listForwards,
    summary: 'Every installed forward (optional: used only when rpc.discover lists it).',
    params: listForwardsParamsSchema,
    result: listForwardsResultSchema,
    resultName: 'forwards',
    optional: true,
    errors: [PERMISSION_DENIED],
  },
];

const definitionsByName: ReadonlyMap<string, MosnetMethodDefinition> = new Map(
  mosnetMethodDefinitions.map((definition) => [definition.name, definition]),
);

/** The definition of a contract method, or undefined for a name outside the contract. */
export function mosnetMethodDefinition(name: string): MosnetMethodDefinition | undefined {
  return definitionsByName.get(name);
}
