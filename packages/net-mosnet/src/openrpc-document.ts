import type { NetOpsCapabilities } from '@my-hypervisor/net-ops';
import { z } from 'zod';
import { type MosnetMethodDefinition, mosnetMethodDefinitions, mosnetMethods } from './methods.js';
import { mosnetErrorCodes } from './rpc-errors.js';

/** A JSON Schema (draft-07), as OpenRPC 1.3 embeds them. */
export type JsonSchema = { readonly [key: string]: unknown };

/** One param or result of an OpenRPC method: its name, whether it is required, and its JSON Schema. */
export interface OpenrpcContentDescriptor {
  readonly name: string;
  readonly description?: string;
  readonly required?: boolean;
  readonly schema: JsonSchema;
}

/** One error an OpenRPC method may answer: its JSON-RPC code and message. */
export interface OpenrpcErrorObject {
  readonly code: number;
  readonly message: string;
}

/** One method of the OpenRPC document: name, params, result and errors. */
export interface OpenrpcMethod {
  readonly name: string;
  readonly summary: string;
  readonly paramStructure: 'by-name';
  readonly params: readonly OpenrpcContentDescriptor[];
  readonly result: OpenrpcContentDescriptor;
  readonly errors: readonly OpenrpcErrorObject[];
  /** True for methods a daemon may lack; the backend calls them only when `rpc.discover` lists them. */
  readonly 'x-optional'?: boolean;
}

/** An OpenRPC 1.3 document, as `rpc.discover` answers and `openrpc.json` holds. */
export interface OpenrpcDocument {
  readonly openrpc: '1.3.2';
  readonly info: { readonly title: string; readonly version: string; readonly description: string };
  readonly servers: readonly { readonly name: string; readonly url: string }[];
  readonly methods: readonly OpenrpcMethod[];
}

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

// Input mode: objects stay open, so a daemon that answers extra fields still matches the document.
function jsonSchema(schema: z.ZodType, io: 'input'): Record<string, unknown> {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, {
    target: 'draft-7',
    io,
    override: ({ zodSchema, jsonSchema }) => noteUnexpressedChecks(zodSchema, jsonSchema),
  }) as Record<string, unknown>;
  return rest;
}

const UNEXPRESSED_NOTE = 'The server also checks what this JSON Schema cannot express:';

/**
 * toJSONSchema drops refinements and regex flags without a word, leaving a looser schema than the server applies;
 * the description says so instead. (Our own schemas have none: see methods.ts.)
 */
function noteUnexpressedChecks(schema: z.core.$ZodType, json: z.core.JSONSchema.BaseSchema): void {
  const unexpressed: string[] = [];
  for (const check of schema._zod.def.checks ?? []) {
    const def: { check: string; error?: unknown; pattern?: unknown } = check._zod.def;
    if (def.check === 'custom') unexpressed.push(refinementMessage(def.error) ?? 'a custom refinement');
    else if (def.pattern instanceof RegExp && /[^uv]/.test(def.pattern.flags)) {
      unexpressed.push(`the pattern is matched with flags "${def.pattern.flags}"`);
    }
  }
  // A described schema and its clone both pass through here; note once.
  if (unexpressed.length === 0 || json.description?.includes(UNEXPRESSED_NOTE)) return;
  const lead = json.description === undefined ? '' : `${json.description} `;
  json.description = `${lead}${UNEXPRESSED_NOTE} ${unexpressed.join('; ')}.`;
}

/** The message given to `.refine(fn, message)`; zod keeps it as an error map of no arguments. */
function refinementMessage(error: unknown): string | undefined {
  try {
    const message: unknown = typeof error === 'function' ? error({}) : undefined;
    return typeof message === 'string' ? message : undefined;
  } catch {
    return undefined;
  }
}

/** One content descriptor per param, each with the JSON Schema of its zod field. */
function paramsOf(definition: MosnetMethodDefinition): OpenrpcContentDescriptor[] {
  const object = jsonSchema(definition.params, 'input') as {
    properties?: Record<string, Record<string, unknown>>;
    required?: string[];
  };
  return Object.entries(object.properties ?? {}).map(([name, schema]) => {
    const { description, ...rest } = schema;
    return {
      name,
      ...(typeof description === 'string' ? { description } : {}),
      required: object.required?.includes(name) ?? false,
      schema: rest,
    };
  });
}

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
    params: paramsOf(definition),
    result: { name: definition.resultName, schema: jsonSchema(definition.result, 'input') },
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
