import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const app = fileURLToPath(new URL('..', import.meta.url));
const root = join(app, '../..');

/** The bundle users run. */
export const bundlePath = join(app, 'dist/myhv.js');

function newest(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let latest = 0;
  for (const entry of readdirSync(path)) {
    if (entry === 'node_modules' || entry === 'dist') continue;
    latest = Math.max(latest, newest(join(path, entry)));
  }
  return latest;
}

/**
 * Rebuilds dist/myhv.js when a workspace source is newer than it, so tests and benchmarks always run the bundle
 * of the current sources (turbo's `test` and `bench` tasks already build first; this covers direct runs).
 */
export function ensureBundle(): string {
  const sources = [
    join(app, 'src'),
    join(app, 'tsup.config.ts'),
    join(app, 'scripts'),
    ...readdirSync(join(root, 'packages')).map((p) => join(root, 'packages', p, 'src')),
  ].filter((p) => existsSync(p));
  const latest = Math.max(...sources.map(newest));
  if (existsSync(bundlePath) && statSync(bundlePath).mtimeMs >= latest) return bundlePath;
  const result = spawnSync(join(app, 'node_modules/.bin/tsup'), [], { cwd: app, encoding: 'utf8' });
  if (result.status !== 0)
    throw new Error(`building ${bundlePath} failed:\n${result.stdout}\n${result.stderr}`);
  return bundlePath;
}
