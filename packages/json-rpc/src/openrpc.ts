import { z } from 'zod';

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

/** One method of an OpenRPC document: name, params, result and errors. */
export interface OpenrpcMethod {
  readonly name: string;
  readonly summary: string;
  readonly description?: string;
  readonly paramStructure: 'by-name';
  readonly params: readonly OpenrpcContentDescriptor[];
  readonly result: OpenrpcContentDescriptor;
  readonly errors: readonly OpenrpcErrorObject[];
  /** True for methods a server may lack; clients call them only when `rpc.discover` lists them. */
  readonly 'x-optional'?: boolean;
}

/** An OpenRPC 1.3 document, as `rpc.discover` answers. */
export interface OpenrpcDocument {
  readonly openrpc: '1.3.2';
  readonly info: { readonly title: string; readonly version: string; readonly description: string };
  readonly servers: readonly { readonly name: string; readonly url: string }[];
  readonly methods: readonly OpenrpcMethod[];
}

/**
 * The draft-07 JSON Schema of a zod schema, as the value on the wire looks (`io: 'input'`: defaults optional,
 * objects open). Checks JSON Schema cannot express (refinements, regex flags) are named in the description
 * rather than dropped without a word; what cannot be represented at all (a transform's output) becomes `{}`.
 */
export function jsonSchemaOf(schema: z.ZodType): JsonSchema {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, {
    target: 'draft-7',
    io: 'input',
    unrepresentable: 'any',
    override: ({ zodSchema, jsonSchema }) => noteUnexpressedChecks(zodSchema, jsonSchema),
  }) as Record<string, unknown>;
  return rest;
}

/** One content descriptor per property of an object schema (params by name), each with its JSON Schema. */
export function paramsOf(schema: z.ZodType): OpenrpcContentDescriptor[] {
  const object = jsonSchemaOf(schema) as {
    properties?: Record<string, Record<string, unknown>>;
    required?: string[];
  };
  return Object.entries(object.properties ?? {}).map(([name, property]) => {
    const { description, ...rest } = property;
    return {
      name,
      ...(typeof description === 'string' ? { description } : {}),
      required: object.required?.includes(name) ?? false,
      schema: rest,
    };
  });
}

const UNEXPRESSED_NOTE = 'The server also checks what this JSON Schema cannot express:';

/**
 * toJSONSchema drops refinements and regex flags without a word, leaving a looser schema than the server applies;
 * the description says so instead.
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
