import type { ChvBodySchemaName } from '../endpoint-table.js';
import { simBodySchemaJson } from './sim-body-schemas.js';

/** A JSON type a body schema names. */
export type SimJsonType = 'string' | 'number' | 'boolean' | 'object' | 'array';

/**
 * The subset of JSON Schema that `z.toJSONSchema()` emits for the lenient request schemas: loose objects,
 * arrays, primitives, string enums, and `null` allowed through `type: [T, 'null']` or `anyOf: [S, null]`.
 * sim-body-check.test.ts fails when a schema uses anything else.
 */
export interface SimBodySchema {
  readonly $schema?: string;
  readonly type?: SimJsonType | readonly [SimJsonType, 'null'];
  readonly enum?: readonly string[];
  readonly anyOf?: readonly [SimBodySchema, { readonly type: 'null' }];
  readonly properties?: Readonly<Record<string, SimBodySchema>>;
  readonly required?: readonly string[];
  /** Always `{}`: the lenient schemas keep unknown fields. */
  readonly additionalProperties?: Readonly<Record<string, never>>;
  readonly items?: SimBodySchema;
}

/** The first problem with a body, worded and located as zod's first issue would be. */
export interface SimBodyIssue {
  readonly code: 'invalid_type' | 'invalid_value';
  readonly path: readonly (string | number)[];
  readonly message: string;
}

const parsed = new Map<ChvBodySchemaName, SimBodySchema>();

/** The lenient schema of a request body (generated from the zod one), parsed on first use. */
export function simBodySchema(name: ChvBodySchemaName): SimBodySchema {
  let schema = parsed.get(name);
  if (!schema) {
    schema = JSON.parse(simBodySchemaJson[name]) as SimBodySchema;
    parsed.set(name, schema);
  }
  return schema;
}

/**
 * Checks a parsed JSON body against a body schema and returns zod's first issue, or undefined when it passes.
 * The simulator's bin validates without zod because building zod and its schemas was most of the CPU each
 * simulated VMM spent; the order (schema key order, depth first) and the wording copy zod's.
 */
export function checkBody(schema: SimBodySchema, value: unknown): SimBodyIssue | undefined {
  return check(schema, value, []);
}

function check(schema: SimBodySchema, value: unknown, path: (string | number)[]): SimBodyIssue | undefined {
  if (schema.anyOf) return value === null ? undefined : check(schema.anyOf[0], value, path);
  if (schema.enum) {
    if (schema.enum.includes(value as string)) return undefined;
    return { code: 'invalid_value', path, message: enumMessage(schema.enum) };
  }
  const declared = schema.type;
  if (declared === undefined) throw new TypeError(`checkBody: a schema without type at ${path.join('.')}`);
  let type: SimJsonType;
  if (typeof declared === 'string') type = declared;
  else if (value === null) return undefined;
  else type = declared[0];
  switch (type) {
    case 'string':
    case 'boolean':
      if (typeof value === type) return undefined;
      break;
    case 'number':
      if (typeof value === 'number' && Number.isFinite(value)) return undefined;
      break;
    case 'array':
      if (Array.isArray(value)) return checkItems(schema, value, path);
      break;
    case 'object':
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
        return checkProperties(schema, value as Record<string, unknown>, path);
      }
      break;
  }
  return {
    code: 'invalid_type',
    path,
    message: `Invalid input: expected ${type}, received ${received(value)}`,
  };
}

function checkItems(schema: SimBodySchema, value: readonly unknown[], path: (string | number)[]) {
  if (!schema.items) return undefined;
  for (let i = 0; i < value.length; i++) {
    const issue = check(schema.items, value[i], [...path, i]);
    if (issue) return issue;
  }
  return undefined;
}

function checkProperties(schema: SimBodySchema, value: Record<string, unknown>, path: (string | number)[]) {
  for (const [key, property] of Object.entries(schema.properties ?? {})) {
    // zod runs an absent required field's schema on `undefined`; an absent optional one is skipped.
    if (!(key in value) && !schema.required?.includes(key)) continue;
    const issue = check(property, value[key], [...path, key]);
    if (issue) return issue;
  }
  return undefined;
}

/** zod's English wording of an `invalid_value` issue for a string enum. */
function enumMessage(values: readonly string[]): string {
  if (values.length === 1) return `Invalid input: expected "${values[0]}"`;
  return `Invalid option: expected one of ${values.map((v) => `"${v}"`).join('|')}`;
}

/** zod's name for what it received (`util.parsedType`), as its English messages print it. */
function received(value: unknown): string {
  // NaN and ±Infinity are numbers to JavaScript but named by their value (JSON.parse turns 1e400 into Infinity).
  if (typeof value === 'number') return Number.isFinite(value) ? 'number' : String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/**
 * Where serde accepts less than the API description requires (v53.0 vm_config.rs): `VmConfig.payload` is an
 * Option (1161; refused only at boot) and `FsConfig.num_queues`/`queue_size` have defaults (584-587). The body
 * is checked as if those were sent; the stored config gets the real defaults in sim-config-defaults.ts.
 */
export function withSerdeDefaults(schema: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const body = value as Record<string, unknown>;
  const fs = (entry: unknown) =>
    entry !== null && typeof entry === 'object' ? { num_queues: 1, queue_size: 1024, ...entry } : entry;
  if (schema === 'FsConfig') return fs(body);
  if (schema !== 'VmConfig') return body;
  return {
    ...body,
    ...(body.payload === undefined ? { payload: {} } : {}),
    ...(Array.isArray(body.fs) ? { fs: body.fs.map(fs) } : {}),
  };
}
