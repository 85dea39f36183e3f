import { realpath, stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { invalidArgument, type StorageError } from './errors.js';
import type { ShareCache } from './storage-backend.js';

/** Share ids name files (`<id>.sock`), so they stay short and free of `/`. */
export const MAX_SHARE_ID_BYTES = 64;
/** The virtio-fs config space holds a 36-byte tag. */
export const MAX_TAG_BYTES = 36;

const safeName = /^[A-Za-z0-9_.-]+$/;

const nameSchema = (max: number) =>
  z
    .string()
    .min(1, 'must not be empty')
    .regex(safeName, "may only contain letters, digits, '_', '.' and '-'")
    .max(max, `must be at most ${max} bytes`)
    .refine((value) => value !== '.' && value !== '..', 'must not be "." or ".."');

/** The zod schema of ShareCache. */
export const shareCacheSchema = z.enum(['never', 'auto', 'always']);

/** The zod schema of a ShareSpec (used by `parseShareSpec`, which also applies the defaults). */
export const shareSpecSchema = z.object({
  id: nameSchema(MAX_SHARE_ID_BYTES),
  hostPath: z
    .string()
    .min(1, 'must not be empty')
    .refine((value) => isAbsolute(value), 'must be an absolute path')
    .refine((value) => !value.includes('\0'), 'must not contain NUL'),
  tag: nameSchema(MAX_TAG_BYTES),
  readOnly: z.boolean().optional(),
  cache: shareCacheSchema.optional(),
});

/** A ShareSpec after validation: defaults applied. `hostPath` is not resolved yet (see `resolveHostPath`). */
export interface ValidShareSpec {
  readonly id: string;
  readonly hostPath: string;
  readonly tag: string;
  readonly readOnly: boolean;
  readonly cache: ShareCache;
}

/** Turns the first zod issue into INVALID_ARGUMENT naming the field (`prefix.path`). */
export function invalidArgumentFromZod(error: z.ZodError, prefix?: string): StorageError {
  const issue = error.issues[0];
  const path = issue?.path.map(String).join('.') ?? '';
  const field = [prefix, path].filter(Boolean).join('.') || prefix || 'input';
  return invalidArgument(field, issue?.message ?? 'is invalid', error);
}

/**
 * Validates a ShareSpec (TypeError when it is not an object at all, INVALID_ARGUMENT naming the field otherwise)
 * and applies defaults. Synchronous: the host path's existence is checked by `resolveHostPath`.
 */
export function parseShareSpec(share: unknown): ValidShareSpec {
  if (typeof share !== 'object' || share === null || Array.isArray(share)) {
    throw new TypeError('share must be a ShareSpec object');
  }
  const parsed = shareSpecSchema.safeParse(share);
  if (!parsed.success) throw invalidArgumentFromZod(parsed.error);
  const { id, hostPath, tag, readOnly = false, cache = 'never' } = parsed.data;
  return { id, hostPath, tag, readOnly, cache };
}

/** Resolves symlinks in `hostPath` and checks the result is a directory; INVALID_ARGUMENT (`hostPath`) otherwise. */
export async function resolveHostPath(hostPath: string): Promise<string> {
  let resolved: string;
  try {
    resolved = await realpath(hostPath);
  } catch (error) {
    throw invalidArgument(
      'hostPath',
      `${JSON.stringify(hostPath)} does not exist or cannot be resolved`,
      error,
    );
  }
  const info = await stat(resolved).catch((error: unknown) => {
    throw invalidArgument('hostPath', `${JSON.stringify(hostPath)} cannot be read`, error);
  });
  if (!info.isDirectory()) {
    throw invalidArgument('hostPath', `${JSON.stringify(hostPath)} is not a directory`);
  }
  return resolved;
}
