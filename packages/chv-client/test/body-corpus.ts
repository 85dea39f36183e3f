import type { ChvBodySchemaName } from '../src/endpoint-table.js';
import { lenient } from '../src/schemas/lenient.js';
import { chvSchemas } from '../src/schemas/registry.js';
import type { SimBodyIssue, SimBodySchema } from '../src/testing/sim-body-check.js';

type Json = unknown;
type Path = readonly (string | number)[];

/** Values of the wrong type (or of no type JSON has: JSON.parse turns 1e400 into Infinity) put in every slot. */
const wrongValues: readonly Json[] = [
  undefined,
  null,
  'text',
  '',
  7,
  -1.5,
  0,
  true,
  false,
  [],
  [1],
  {},
  { nested: 1 },
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.NaN,
  'Bogus',
];

/**
 * A body that satisfies `schema`: `full` fills every field (arrays get two elements), `minimal` only the
 * required ones, `nulls` every field with null where the schema allows it.
 */
export function validBody(schema: SimBodySchema, mode: 'full' | 'minimal' | 'nulls'): Json {
  if (schema.anyOf) return mode === 'nulls' ? null : validBody(schema.anyOf[0], mode);
  if (schema.enum) return mode === 'minimal' ? schema.enum.at(-1) : schema.enum[0];
  const nullable = Array.isArray(schema.type);
  if (nullable && mode === 'nulls') return null;
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'string':
      return mode === 'minimal' ? '' : 'value';
    case 'number':
      return mode === 'minimal' ? 0 : 3;
    case 'boolean':
      return mode !== 'minimal';
    case 'array': {
      const item = validBody(schema.items ?? {}, mode === 'nulls' ? 'full' : mode);
      return mode === 'minimal' ? [] : [item, structuredClone(item)];
    }
    case 'object': {
      const body: Record<string, Json> = {};
      for (const [key, property] of Object.entries(schema.properties ?? {})) {
        if (mode === 'minimal' && !schema.required?.includes(key)) continue;
        // A required field must hold a value even in `nulls` mode; its own optional fields may be null.
        const required = schema.required?.includes(key) ?? false;
        body[key] = validBody(property, mode === 'nulls' && required ? 'full' : mode);
      }
      return body;
    }
    default:
      throw new TypeError(`validBody: unexpected schema ${JSON.stringify(schema)}`);
  }
}

/** Every path to a value inside `body` (object fields and array elements), outermost first. */
export function paths(body: Json, prefix: Path = []): Path[] {
  const found: Path[] = [];
  if (Array.isArray(body)) {
    body.forEach((item, i) => {
      found.push([...prefix, i], ...paths(item, [...prefix, i]));
    });
  } else if (body !== null && typeof body === 'object') {
    for (const [key, value] of Object.entries(body)) {
      found.push([...prefix, key], ...paths(value, [...prefix, key]));
    }
  }
  return found;
}

/** A copy of `body` with the value at `path` replaced (undefined deletes the field). */
export function replaced(body: Json, path: Path, value: Json): Json {
  const copy = structuredClone(body) as Record<string | number, Json>;
  let parent = copy;
  for (const step of path.slice(0, -1)) parent = parent[step] as Record<string | number, Json>;
  const last = path.at(-1)!;
  if (value === undefined && !Array.isArray(parent)) delete parent[last];
  else parent[last] = value;
  return copy;
}

/** A small seeded generator, so a failing case can be replayed. */
function random(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (state * 1_664_525 + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

/**
 * Valid and invalid bodies for one schema: the valid forms, each of them with every field replaced by every
 * wrong value, an unknown field added to every object, and `pairs` bodies with two fields broken at once (which
 * one is reported first is part of the answer).
 */
export function bodyCorpus(schema: SimBodySchema, pairs = 200): Json[] {
  const bases = (['full', 'minimal', 'nulls'] as const).map((mode) => validBody(schema, mode));
  const corpus: Json[] = [...bases, null, [], 'text', 1, true, {}];
  for (const base of bases) {
    for (const path of paths(base)) {
      for (const value of wrongValues) corpus.push(replaced(base, path, value));
    }
    for (const path of [[], ...paths(base)]) {
      const target = path.reduce<Json>((v, step) => (v as Record<string | number, Json>)[step], base);
      if (target !== null && typeof target === 'object' && !Array.isArray(target)) {
        corpus.push(replaced(base, [...path, 'x_unknown_field'], { any: ['thing'] }));
      }
    }
  }
  const full = bases[0];
  const all = paths(full);
  const next = random(all.length);
  for (let i = 0; i < pairs && all.length > 1; i++) {
    const a = all[Math.floor(next() * all.length)]!;
    const b = all[Math.floor(next() * all.length)]!;
    const va = wrongValues[Math.floor(next() * wrongValues.length)];
    const vb = wrongValues[Math.floor(next() * wrongValues.length)];
    // Replacing an ancestor of the other path first would make the second replacement fail: order them.
    const [first, second] = a.length <= b.length ? [a, b] : [b, a];
    const once = replaced(full, second, vb);
    corpus.push(replaced(once, first, va));
  }
  return corpus;
}

const readers = new Map<ChvBodySchemaName, ReturnType<typeof lenient>>();

/** How the simulator judged a body before it dropped zod: the first issue of the lenient zod reader. */
export function zodFirstIssue(name: ChvBodySchemaName, value: unknown): SimBodyIssue | undefined {
  let reader = readers.get(name);
  if (!reader) {
    reader = lenient(chvSchemas[name]);
    readers.set(name, reader);
  }
  const result = reader.safeParse(value);
  if (result.success) return undefined;
  const { code, path, message } = result.error.issues[0]!;
  return { code, path, message } as SimBodyIssue;
}
