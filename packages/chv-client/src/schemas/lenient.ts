import { z } from 'zod';

/**
 * The reading side of a strict request type: every object keeps unknown fields, and every optional field may
 * also be `null` (the VMM serialises absent options as `null`). `unknown` and scalars stay as they are.
 */
export type Lenient<T> = unknown extends T
  ? T
  : T extends readonly (infer U)[]
    ? Lenient<U>[]
    : T extends Record<string, unknown>
      ? {
          // `unknown` first: NonNullable<unknown> is `{}`, which would turn it into an object.
          [K in keyof T]: unknown extends T[K]
            ? T[K]
            : undefined extends T[K]
              ? Lenient<NonNullable<T[K]>> | null | undefined
              : Lenient<T[K]>;
        } & { [key: string]: unknown }
      : T;

/**
 * Derives the lenient schema from a strict one: loose objects, nullish optionals, unconstrained numbers and
 * strings. Enums stay strict: a value outside them is a real change of the API worth failing on.
 */
export function lenient<S extends z.ZodType>(schema: S): z.ZodType<Lenient<z.output<S>>> {
  return relax(schema) as z.ZodType<Lenient<z.output<S>>>;
}

function relax(schema: z.ZodType): z.ZodType {
  if (schema instanceof z.ZodOptional) return relax(schema.unwrap() as z.ZodType).nullish();
  if (schema instanceof z.ZodNullable) return relax(schema.unwrap() as z.ZodType).nullable();
  if (schema instanceof z.ZodObject) {
    const shape: Record<string, z.ZodType> = {};
    for (const [key, field] of Object.entries(schema.shape as Record<string, z.ZodType>)) {
      shape[key] = relax(field);
    }
    return z.looseObject(shape);
  }
  if (schema instanceof z.ZodArray) return z.array(relax(schema.element as z.ZodType));
  if (schema instanceof z.ZodRecord) {
    return z.record(z.string(), relax(schema.valueType as z.ZodType));
  }
  if (schema instanceof z.ZodNumber) return z.number();
  if (schema instanceof z.ZodString) return z.string();
  return schema;
}
