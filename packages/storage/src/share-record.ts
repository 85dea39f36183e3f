import { z } from 'zod';
import { invalidArgumentFromZod, MAX_SHARE_ID_BYTES, MAX_TAG_BYTES, shareCacheSchema } from './share-spec.js';
import type { JsonValue, ShareRecord } from './storage-backend.js';

const jsonValueSchema: z.ZodType<JsonValue> = z.lazy(() =>
  z.union([
    z.string(),
    z.number(),
    z.boolean(),
    z.null(),
    z.array(jsonValueSchema),
    z.record(z.string(), jsonValueSchema),
  ]),
);

/** The zod schema of a ShareRecord as it comes back from JSON (used by `parseShareRecord`). */
export const shareRecordSchema = z.object({
  backend: z.string().min(1),
  id: z
    .string()
    .min(1)
    .max(MAX_SHARE_ID_BYTES)
    .regex(/^[A-Za-z0-9_.-]+$/),
  tag: z
    .string()
    .max(MAX_TAG_BYTES)
    .regex(/^[A-Za-z0-9_.-]*$/),
  socketPath: z.string().min(1),
  hostPath: z.string(),
  readOnly: z.boolean(),
  cache: shareCacheSchema,
  pid: z.number().int().positive().optional(),
  preparedAt: z.string(),
  details: z.record(z.string(), jsonValueSchema).optional(),
});

/**
 * Validates a ShareRecord that came back from storage (JSON). TypeError when it is not an object, INVALID_ARGUMENT
 * naming the field otherwise.
 */
export function parseShareRecord(input: unknown, field = 'record'): ShareRecord {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new TypeError(`${field} must be a ShareRecord object`);
  }
  const parsed = shareRecordSchema.safeParse(input);
  if (!parsed.success) throw invalidArgumentFromZod(parsed.error, field);
  return parsed.data as ShareRecord;
}

/** The record inside a PreparedShare, or the record itself. */
export function recordOf(share: unknown): unknown {
  if (typeof share === 'object' && share !== null && 'record' in share && 'requiresSharedMemory' in share) {
    return (share as { record: unknown }).record;
  }
  return share;
}
