import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { deriveSimBodySchemas } from '../../scripts/gen-sim-body-schemas.js';
import { bodyCorpus, zodFirstIssue } from '../../test/body-corpus.js';
import { type ChvBodySchemaName, chvEndpointSpecs } from '../endpoint-table.js';
import { chvEndpoints } from '../endpoints.js';
import { chvSchemas } from '../schemas/registry.js';
import { checkBody, type SimBodySchema, simBodySchema } from './sim-body-check.js';
import { simBodySchemaJson } from './sim-body-schemas.js';

const names = Object.keys(simBodySchemaJson) as ChvBodySchemaName[];

/** Throws on any keyword or shape checkBody does not implement. */
function assertSupported(schema: SimBodySchema, at: string): void {
  const keys = Object.keys(schema);
  if (schema.anyOf) {
    expect(keys, at).toEqual(['anyOf']);
    expect(schema.anyOf.length, at).toBe(2);
    expect(schema.anyOf[1], at).toEqual({ type: 'null' });
    assertSupported(schema.anyOf[0], `${at}.anyOf[0]`);
    return;
  }
  if (schema.enum) {
    expect(keys.sort(), at).toEqual(['enum', 'type']);
    expect(schema.type, at).toBe('string');
    for (const value of schema.enum) expect(typeof value, at).toBe('string');
    return;
  }
  const type = schema.type;
  if (Array.isArray(type)) {
    expect(type.length, at).toBe(2);
    expect(type[1], at).toBe('null');
    expect(['string', 'number', 'boolean'], at).toContain(type[0]);
    expect(keys, at).toEqual(['type']);
    return;
  }
  switch (type) {
    case 'string':
    case 'number':
    case 'boolean':
      expect(keys, at).toEqual(['type']);
      return;
    case 'array':
      expect(keys.sort(), at).toEqual(['items', 'type']);
      assertSupported(schema.items!, `${at}.items`);
      return;
    case 'object':
      expect(schema.additionalProperties, `${at}: the lenient reading keeps unknown fields`).toEqual({});
      for (const key of keys) {
        expect(['$schema', 'type', 'properties', 'required', 'additionalProperties'], at).toContain(key);
      }
      for (const required of schema.required ?? [])
        expect(Object.keys(schema.properties ?? {})).toContain(required);
      for (const [key, property] of Object.entries(schema.properties ?? {})) {
        assertSupported(property, `${at}.${key}`);
      }
      return;
    default:
      throw new Error(`${at}: unsupported schema ${JSON.stringify(schema)}`);
  }
}

describe('simulator body schemas', () => {
  it('are generated from the current zod schemas (run `pnpm gen:sim-schemas` after changing them)', () => {
    const derived = deriveSimBodySchemas();
    expect(Object.keys(derived).sort()).toEqual([...names].sort());
    for (const name of names) expect(simBodySchema(name), name).toEqual(derived[name]);
  });

  it('cover exactly the endpoints that take a body, with the same schema as chvEndpoints', () => {
    const withBody = chvEndpointSpecs.filter((spec) => spec.body);
    expect(new Set(withBody.map((spec) => spec.body))).toEqual(new Set(names));
    expect(withBody.map((spec) => spec.name)).toEqual(
      chvEndpoints.filter((endpoint) => endpoint.body).map((endpoint) => endpoint.name),
    );
    for (const spec of withBody) {
      expect(chvEndpoints.find((endpoint) => endpoint.name === spec.name)?.body, spec.name).toBe(
        chvSchemas[spec.body!],
      );
    }
  });

  it('use only the JSON Schema shapes checkBody implements', () => {
    for (const name of names) assertSupported(simBodySchema(name), name);
  });
});

describe('checkBody', () => {
  it('accepts unknown fields and null for absent options, like the lenient zod reader', () => {
    const schema = simBodySchema('VmConfig');
    expect(checkBody(schema, { payload: { kernel: '/k', extra: 1 }, cpus: null, future_field: [1] })).toBe(
      undefined,
    );
  });

  it('reports a missing required field, a wrong type and an enum outside its values with their paths', () => {
    const schema = simBodySchema('VmConfig');
    expect(checkBody(schema, {})).toEqual({
      code: 'invalid_type',
      path: ['payload'],
      message: 'Invalid input: expected object, received undefined',
    });
    expect(checkBody(schema, { payload: {}, net: [{ tap: 'a' }, { tap: 5 }] })).toEqual({
      code: 'invalid_type',
      path: ['net', 1, 'tap'],
      message: 'Invalid input: expected string, received number',
    });
    expect(checkBody(schema, { payload: {}, serial: { mode: 'Bogus' } })).toEqual({
      code: 'invalid_value',
      path: ['serial', 'mode'],
      message: 'Invalid option: expected one of "Off"|"Pty"|"Tty"|"File"|"Socket"|"Null"',
    });
  });

  // The corpus: each schema's valid forms, every field replaced by every wrong value, unknown fields added,
  // and two fields broken at once (which one comes first is part of the answer).
  it.each(names)('answers exactly as zod does for a corpus of %s bodies', (name) => {
    const schema = simBodySchema(name);
    const corpus = bodyCorpus(schema);
    let valid = 0;
    const differences: unknown[] = [];
    for (const body of corpus) {
      const expected = zodFirstIssue(name, body);
      if (!expected) valid++;
      const actual = checkBody(schema, body);
      if (!isDeepStrictEqual(actual, expected)) differences.push({ body, expected, actual });
    }
    expect(differences.slice(0, 3)).toEqual([]);
    // The corpus must hold both kinds, or the comparison proves nothing.
    expect(valid).toBeGreaterThanOrEqual(3);
    expect(corpus.length - valid).toBeGreaterThan(10);
  });
});
