import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { API_ROOT, chvEndpoints } from '../src/endpoints.js';
import { ChvClient } from '../src/index.js';
import { chvSchemas } from '../src/schemas/registry.js';
import { startSimulator } from '../src/testing/index.js';
import { tempDir } from './helpers.js';

// The official description sits beside the repository (never copied into it), or where MYHV_CHV_OPENAPI says.
const repositoryRoot = resolve(import.meta.dirname, '../../..');
const specPath =
  process.env.MYHV_CHV_OPENAPI ??
  join(repositoryRoot, '..', 'shared', 'cloud-hypervisor', 'cloud-hypervisor.yaml');
const specPresent = existsSync(specPath);
if (!specPresent) {
  console.warn(`skipped: OpenAPI contract tests, because ${specPath} does not exist (set MYHV_CHV_OPENAPI)`);
}

interface SpecSchema {
  type?: string;
  $ref?: string;
  enum?: string[];
  properties?: Record<string, SpecSchema>;
  required?: string[];
  items?: SpecSchema;
  additionalProperties?: SpecSchema | boolean;
  minimum?: number;
  maximum?: number;
  minLength?: number;
}

interface SpecOperation {
  requestBody?: { content: { 'application/json': { schema: SpecSchema } } };
  // Keys are numbers or strings ("200"): /vm.add-user-device quotes them.
  responses: Record<string | number, { content?: { 'application/json': { schema: SpecSchema } } }>;
}

interface Spec {
  paths: Record<string, Record<string, SpecOperation>>;
  components: { schemas: Record<string, SpecSchema> };
}

const refName = (ref: string) => ref.replace('#/components/schemas/', '');
const schemaName = new Map<z.ZodType, string>(
  Object.entries(chvSchemas).map(([name, schema]) => [schema, name]),
);

/** A comparable description of a zod schema, in the description's vocabulary. */
function describeZod(schema: z.ZodType): unknown {
  const named = schemaName.get(schema);
  if (named) return { $ref: named };
  if (schema instanceof z.ZodArray) return { type: 'array', items: describeZod(schema.element as z.ZodType) };
  if (schema instanceof z.ZodRecord)
    return { type: 'object', additionalProperties: describeZod(schema.valueType as z.ZodType) };
  if (schema instanceof z.ZodEnum) return { type: 'string', enum: schema.options };
  if (schema instanceof z.ZodString)
    return { type: 'string', ...(schema.minLength ? { minLength: schema.minLength } : {}) };
  if (schema instanceof z.ZodBoolean) return { type: 'boolean' };
  if (schema instanceof z.ZodUnknown) return { type: 'unknown' };
  if (schema instanceof z.ZodNumber) {
    const bounds: Record<string, number> = {};
    // Only bounds that are not the implied range of the integer format.
    if (schema.minValue !== null && schema.minValue > Number.MIN_SAFE_INTEGER)
      bounds.minimum = schema.minValue;
    if (schema.maxValue !== null && schema.maxValue < Number.MAX_SAFE_INTEGER)
      bounds.maximum = schema.maxValue;
    return { type: schema.isInt ? 'integer' : 'number', ...bounds };
  }
  return { type: `unsupported ${schema.constructor.name}` };
}

/** The same description from the OpenAPI side, keeping only what the contract checks. */
function describeSpec(schema: SpecSchema, formatBounds: boolean): unknown {
  if (schema.$ref) return { $ref: refName(schema.$ref) };
  if (schema.type === 'array') return { type: 'array', items: describeSpec(schema.items!, formatBounds) };
  if (schema.type === 'object' && typeof schema.additionalProperties === 'object') {
    return { type: 'object', additionalProperties: describeSpec(schema.additionalProperties, formatBounds) };
  }
  // An object with no properties (a Rust enum with data): any JSON object.
  if (schema.type === 'object') return { type: 'object', additionalProperties: { type: 'unknown' } };
  if (schema.enum) return { type: 'string', enum: schema.enum };
  if (schema.type === 'string')
    return { type: 'string', ...(schema.minLength ? { minLength: schema.minLength } : {}) };
  if (schema.type === 'integer' || schema.type === 'number') {
    return {
      type: schema.type,
      ...(schema.minimum !== undefined ? { minimum: schema.minimum } : {}),
      ...(schema.maximum !== undefined ? { maximum: schema.maximum } : {}),
    };
  }
  return { type: schema.type };
}

// Integer formats we enforce on top of the description's explicit bounds.
const formatRanges: Record<string, [number, number]> = {
  int8: [-128, 127],
  int16: [-32_768, 32_767],
  int32: [-2_147_483_648, 2_147_483_647],
  uint8: [0, 255],
  uint16: [0, 65_535],
  uint32: [0, 4_294_967_295],
};

function withFormatBounds(schema: SpecSchema & { format?: string }): SpecSchema {
  const range = schema.format ? formatRanges[schema.format] : undefined;
  if (!range || schema.type !== 'integer') return schema;
  return {
    ...schema,
    minimum: Math.max(schema.minimum ?? range[0], range[0]),
    maximum: Math.min(schema.maximum ?? range[1], range[1]),
  };
}

function normalise(schema: SpecSchema): SpecSchema {
  const s = withFormatBounds(schema);
  return s.type === 'array' && s.items ? { ...s, items: normalise(s.items) } : s;
}

describe.skipIf(!specPresent)('OpenAPI contract (cloud-hypervisor.yaml)', () => {
  const spec = specPresent
    ? (parse(readFileSync(specPath, 'utf8')) as Spec)
    : ({ paths: {}, components: { schemas: {} } } as Spec);
  const operations = Object.entries(spec.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({
      name: path.slice(1),
      method: method.toUpperCase(),
      operation,
    })),
  );

  it('has 31 endpoints, each one of ours with the same method, and no extra ones', () => {
    expect(operations).toHaveLength(31);
    expect(chvEndpoints.map((e) => `${e.method} ${e.name}`).sort()).toEqual(
      operations.map((o) => `${o.method} ${o.name}`).sort(),
    );
  });

  it.each(operations)(
    '$method $name: client method, request body and response match',
    ({ name, operation }) => {
      const endpoint = chvEndpoints.find((e) => e.name === name)!;
      expect(typeof (ChvClient.prototype as unknown as Record<string, unknown>)[endpoint.clientMethod]).toBe(
        'function',
      );
      const body = operation.requestBody?.content['application/json'].schema.$ref;
      expect(endpoint.body ? schemaName.get(endpoint.body) : undefined).toBe(
        body ? refName(body) : undefined,
      );
      const codes = Object.keys(operation.responses).map(Number);
      expect(codes.every((code) => Number.isInteger(code) && code >= 200 && code < 600)).toBe(true);
      const ok = operation.responses[200] ?? operation.responses['200'];
      const returned = ok?.content?.['application/json'].schema.$ref;
      const expected = {
        VmmPingResponse: 'ping',
        VmInfo: 'info',
        VmCounters: 'counters',
        PciDeviceInfo: 'pci-device',
      };
      expect(endpoint.response).toBe(
        returned ? expected[refName(returned) as keyof typeof expected] : 'none',
      );
    },
  );

  it('every path and method is a simulator route (v53)', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    await using _sim = await startSimulator({ socketPath });
    const http = await import('node:http');
    for (const { name, method } of operations) {
      if (name === 'vmm.shutdown') continue; // would end the simulator
      const answer = await new Promise<{ status: number; body: string }>((resolveAnswer, reject) => {
        const req = http.request({ socketPath, path: `${API_ROOT}/${name}`, method }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString();
          });
          res.on('end', () => resolveAnswer({ status: res.statusCode ?? 0, body: text }));
        });
        req.on('error', reject);
        req.end();
      });
      expect(answer.body, `${method} ${name}`).not.toBe('["Not Found"]');
      // The wrong method on a real route is a 400, never a 404.
      const wrong = method === 'GET' ? 'PUT' : 'GET';
      const other = await new Promise<number>((resolveStatus, reject) => {
        const req = http.request({ socketPath, path: `${API_ROOT}/${name}`, method: wrong }, (res) => {
          res.resume();
          res.on('end', () => resolveStatus(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
      expect(other, `${wrong} ${name}`).toBe(400);
    }
  });

  it('has a schema for every component and no others', () => {
    expect(Object.keys(chvSchemas).sort()).toEqual(Object.keys(spec.components.schemas).sort());
  });

  it.each(Object.keys(spec.components.schemas))(
    'schema %s: properties, required fields, types and enums match',
    (name) => {
      const specSchema = spec.components.schemas[name]!;
      const ours = chvSchemas[name as keyof typeof chvSchemas] as z.ZodType;
      if (specSchema.enum) {
        expect(ours).toBeInstanceOf(z.ZodEnum);
        expect((ours as z.ZodEnum).options).toEqual(specSchema.enum);
        return;
      }
      if (!specSchema.properties) {
        // VmCounters: a map of maps.
        expect({
          type: 'object',
          additionalProperties: describeZod((ours as z.ZodRecord).valueType as z.ZodType),
        }).toEqual(describeSpec(normalise(specSchema), true));
        return;
      }
      expect(ours).toBeInstanceOf(z.ZodObject);
      const shape = (ours as z.ZodObject).shape as Record<string, z.ZodType>;
      expect(Object.keys(shape).sort()).toEqual(Object.keys(specSchema.properties).sort());
      const required = Object.keys(shape).filter((key) => !(shape[key] instanceof z.ZodOptional));
      expect(required.sort()).toEqual([...(specSchema.required ?? [])].sort());
      for (const [key, property] of Object.entries(specSchema.properties)) {
        const field = shape[key]!;
        const inner = field instanceof z.ZodOptional ? (field.unwrap() as z.ZodType) : field;
        expect(describeZod(inner), `${name}.${key}`).toEqual(describeSpec(normalise(property), true));
      }
      // Strict on what we send.
      expect((ours as z.ZodObject).safeParse({ ...Object.fromEntries([]), __unknown__: 1 }).success).toBe(
        false,
      );
    },
  );
});
