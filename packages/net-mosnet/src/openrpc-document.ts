import { jsonSchemaOf, type OpenrpcDocument, type OpenrpcMethod, paramsOf } from '@my-hypervisor/json-rpc';
import type { NetOpsCapabilities } from '@my-hypervisor/net-ops';
import { type MosnetMethodDefinition, mosnetMethodDefinitions, mosnetMethods } from './methods.js';
import { mosnetErrorCodes } from './rpc-errors.js';

export type {
  JsonSchema,
  OpenrpcContentDescriptor,
  OpenrpcDocument,
  OpenrpcErrorObject,
  OpenrpcMethod,
} from '@my-hypervisor/json-rpc';

/** The contract's version: changes only when the methods, params or error codes change. */
export const MOSNET_CONTRACT_VERSION = '1.0.0';

const errorMessages: Readonly<Record<number, string>> = {
  [mosnetErrorCodes.METHOD_NOT_FOUND]: 'Method not found (UNSUPPORTED)',
  [mosnetErrorCodes.INVALID_PARAMS]: 'Invalid params (INVALID_ARGUMENT; data.field names the param)',
  [mosnetErrorCodes.BACKEND_FAILURE]: 'Backend failure (BACKEND_FAILURE; data keeps the details)',
  [mosnetErrorCodes.NOT_FOUND]: 'Not found (NOT_FOUND)',
  [mosnetErrorCodes.ALREADY_EXISTS]: 'Already exists (ALREADY_EXISTS)',
  [mosnetErrorCodes.CONFLICT]: 'Conflict (CONFLICT)',
  [mosnetErrorCodes.PERMISSION_DENIED]: 'Permission denied (PERMISSION_DENIED)',
  [mosnetErrorCodes.UNSUPPORTED]: 'Unsupported option (UNSUPPORTED)',
};

function methodOf(definition: MosnetMethodDefinition): OpenrpcMethod {
  const codes = [
    ...(definition.optional ? [mosnetErrorCodes.METHOD_NOT_FOUND] : []),
    mosnetErrorCodes.INVALID_PARAMS,
    mosnetErrorCodes.BACKEND_FAILURE,
    ...definition.errors,
  ];
  return {
    name: definition.name,
    summary: definition.summary,
    paramStructure: 'by-name',
    params: paramsOf(definition.params),
    result: { name: definition.resultName, schema: jsonSchemaOf(definition.result) },
    errors: codes.map((code) => ({ code, message: errorMessages[code] ?? 'Error' })),
    ...(definition.optional ? { 'x-optional': true } : {}),
  };
}

/** Builds the OpenRPC document of the methods in `definitions` (all of them by default). */
export function buildOpenrpcDocument(
  definitions: readonly MosnetMethodDefinition[] = mosnetMethodDefinitions,
): OpenrpcDocument {
  return {
    openrpc: '1.3.2',
    info: {
      title: 'mosnet host-network API (the subset @my-hypervisor/net-mosnet calls)',
      version: MOSNET_CONTRACT_VERSION,
      description:
        'Newline-delimited JSON-RPC 2.0 over a Unix socket, params by name. Server errors -32000…-32099 are ' +
        'BACKEND_FAILURE except the codes listed per method. Methods marked x-optional are called only when ' +
        'rpc.discover lists them.',
    },
    servers: [{ name: 'mosnetd', url: 'unix:///var/run/mosnet.sock' }],
    methods: definitions.map(methodOf),
  };
}

/** The OpenRPC document of every method the backend calls; `openrpc.json` in the package is this, written out. */
export const openrpcDocument: OpenrpcDocument = buildOpenrpcDocument();

/**
 * The document a server answers `rpc.discover` with for ops of these capabilities: optional methods only when
 * the ops can list, and `multi_queue`, `owner`, `ipv6_address` only when the ops take them. This is how a
 * `MosnetOps` on the other side learns its capabilities.
 */
export function documentForCapabilities(capabilities: NetOpsCapabilities): OpenrpcDocument {
  const dropped = new Set<string>([
    ...(capabilities.listBridgePorts ? [] : [mosnetMethods.listBridgePorts]),
    ...(capabilities.listPortForwards ? [] : [mosnetMethods.listForwards]),
  ]);
  const droppedParams: Record<string, readonly string[]> = {
    [mosnetMethods.createTap]: [
      ...(capabilities.multiQueue ? [] : ['multi_queue']),
      ...(capabilities.tapOwner ? [] : ['owner']),
    ],
    [mosnetMethods.bridgeAdd]: capabilities.ipv6 ? [] : ['ipv6_address'],
  };
  return {
    ...openrpcDocument,
    methods: openrpcDocument.methods
      .filter((method) => !dropped.has(method.name))
      .map((method) => {
        const drop = droppedParams[method.name] ?? [];
        return drop.length === 0
          ? method
          : { ...method, params: method.params.filter((param) => !drop.includes(param.name)) };
      }),
  };
}
