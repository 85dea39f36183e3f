import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const packageDir = fileURLToPath(new URL('..', import.meta.url));

/** Every module specifier a file imports statically or dynamically. */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const match of text.matchAll(
    /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]/g,
  )) {
    found.push((match[1] ?? match[2])!);
  }
  return found;
}

/** The modules reachable from `entry` through relative imports, and the bare specifiers they use. */
function reachable(entry: string): { files: string[]; bare: Set<string> } {
  const files: string[] = [];
  const bare = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (files.includes(file)) continue;
    files.push(file);
    for (const spec of specifiers(file)) {
      if (!spec.startsWith('.')) {
        bare.add(spec);
        continue;
      }
      const target = resolve(dirname(file), spec);
      const candidates = [target, target.replace(/\.js$/, '.ts')];
      const hit = candidates.find((c) => existsSync(c) && !c.endsWith('.json'));
      if (hit) queue.push(hit);
    }
  }
  return { files, bare };
}

describe('entry points', () => {
  it('the main entry never reaches vitest (it is an optional peer of ./testing only)', () => {
    const { files, bare } = reachable(join(packageDir, 'src/index.ts'));
    expect(files.length).toBeGreaterThan(5);
    expect(files.some((f) => f.includes('/testing/'))).toBe(false);
    expect([...bare].filter((s) => s === 'vitest' || s.startsWith('vitest/'))).toEqual([]);
    expect([...bare].filter((s) => !s.startsWith('node:')).sort()).toEqual(['zod']);
  });

  it('./testing reaches vitest', () => {
    expect(reachable(join(packageDir, 'src/testing/index.ts')).bare.has('vitest')).toBe(true);
  });

  it.skipIf(!existsSync(join(packageDir, 'dist/index.js')))(
    'the built dist/index.js and its chunks never import vitest (skipped when not built)',
    () => {
      const { files, bare } = reachable(join(packageDir, 'dist/index.js'));
      expect(files.length).toBeGreaterThan(0);
      expect([...bare].filter((s) => s.includes('vitest'))).toEqual([]);
    },
  );
});
