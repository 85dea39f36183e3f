import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { StorageError } from './errors.js';
import { parseShareSpec, resolveHostPath } from './share-spec.js';

const made: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(made.map((dir) => rm(dir, { recursive: true, force: true })));
});

const base = { id: 'vm1-home', hostPath: '/srv/home', tag: 'home' };

function codeOf(fn: () => unknown): { code?: string; field?: unknown } {
  try {
    fn();
  } catch (error) {
    if (StorageError.isInstance(error)) return { code: error.code, field: error.details.field };
    throw error;
  }
  return {};
}

describe('parseShareSpec', () => {
  it('applies defaults: not read-only, cache never', () => {
    expect(parseShareSpec(base)).toEqual({ ...base, readOnly: false, cache: 'never' });
    expect(parseShareSpec({ ...base, readOnly: true, cache: 'auto' })).toMatchObject({
      readOnly: true,
      cache: 'auto',
    });
  });

  it('accepts a 36-byte tag and a 64-byte id', () => {
    expect(parseShareSpec({ ...base, tag: 't'.repeat(36), id: 'i'.repeat(64) }).tag).toHaveLength(36);
  });

  it.each([
    ['tag', ''],
    ['tag', 't'.repeat(37)],
    ['tag', 'with space'],
    ['tag', 'semi;colon'],
    ['tag', 'ünï'],
    ['id', 'i'.repeat(65)],
    ['id', 'a/b'],
    ['id', '.'],
    ['id', '..'],
    ['hostPath', 'relative'],
    ['hostPath', ''],
    ['hostPath', '/nul\0byte'],
    ['cache', 'none'],
    ['readOnly', 1],
  ])('rejects %s = %j with INVALID_ARGUMENT naming the field', (field, value) => {
    expect(codeOf(() => parseShareSpec({ ...base, [field]: value }))).toEqual({
      code: 'INVALID_ARGUMENT',
      field,
    });
  });

  it('throws TypeError for something that is not an object', () => {
    expect(() => parseShareSpec(null)).toThrow(TypeError);
    expect(() => parseShareSpec('share')).toThrow(TypeError);
    expect(() => parseShareSpec([])).toThrow(TypeError);
  });
});

describe('resolveHostPath', () => {
  it('resolves symlinks to the real directory and rejects files and missing paths', async () => {
    const dir = await tempDir('myhv-spec-');
    await symlink(dir, join(dir, 'self'));
    await writeFile(join(dir, 'file'), '');
    await symlink(join(dir, 'file'), join(dir, 'to-file'));
    expect(await resolveHostPath(join(dir, 'self'))).toBe(await resolveHostPath(dir));
    for (const bad of ['file', 'to-file', 'missing']) {
      const error = await resolveHostPath(join(dir, bad)).catch((e: unknown) => e);
      expect((error as StorageError).code).toBe('INVALID_ARGUMENT');
      expect((error as StorageError).details.field).toBe('hostPath');
    }
  });
});
