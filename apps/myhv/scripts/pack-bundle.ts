import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const app = fileURLToPath(new URL('..', import.meta.url));

/** Where tsup writes the CommonJS bundle before it is packed (ignored by git, like all of node_modules). */
export const intermediateDir = join(app, 'node_modules/.cache/myhv-pack');

/**
 * Packs the CommonJS bundle into the one file users run, dist/myhv.js: a small ES module holding the bundle's
 * source as a string and V8's code cache for it. Loading then skips compiling ~1 MB of JavaScript (the slowest
 * part of start-up); on another Node version V8 rejects the cache and compiles as usual.
 */
export function packBundle(): void {
  const bundle = join(intermediateDir, 'myhv.cjs');
  const target = join(app, 'dist/myhv.js');
  const wrapped = join(intermediateDir, 'wrapped.cjs');
  const cache = join(intermediateDir, 'myhv.cache');
  // The same text the loader compiles: the bundle as the body of a CommonJS module function.
  const source = `(function (exports, require, module, __filename, __dirname) {${readFileSync(bundle, 'utf8')}\n})`;
  writeFileSync(wrapped, source);
  const made = spawnSync(process.execPath, [join(app, 'scripts/code-cache.mjs'), wrapped, cache, target], {
    encoding: 'utf8',
  });
  if (made.status !== 0) throw new Error(`making the code cache failed:\n${made.stdout}\n${made.stderr}`);
  const loader = `#!/usr/bin/env node
// myhv, bundled: the CommonJS bundle of apps/myhv below, compiled with V8's code cache made at build time.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

const file = fileURLToPath(import.meta.url);
const script = new Script(${JSON.stringify(source)}, {
  filename: file,
  cachedData: Buffer.from(${JSON.stringify(readFileSync(cache).toString('base64'))}, 'base64'),
});
const module = { exports: {} };
script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file));
const code = await module.exports.main(process.argv.slice(2), file);
// Exit once stdout and stderr are flushed (a large JSON document on a pipe must not be cut short), and not later:
// a handle a command left open must not keep the CLI alive.
let open = 2;
const flushed = () => {
  open -= 1;
  if (open === 0) process.exit(code);
};
process.stdout.write('', flushed);
process.stderr.write('', flushed);
`;
  rmSync(dirname(target), { recursive: true, force: true });
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, loader);
  chmodSync(target, 0o755);
}
