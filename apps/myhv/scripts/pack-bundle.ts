import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const app = fileURLToPath(new URL('..', import.meta.url));

/** Where tsup writes the CommonJS bundle before it is packed (ignored by git, like all of node_modules). */
const PAYLOAD_MARKER = 'myhv-payload:';

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
  // The bundle and its cache travel base64-encoded in a comment at the end of the file: V8 skips a comment
  // far faster than it scans (and allocates) a megabyte-long string literal, and base64 never contains the `*/`
  // that would end the comment early.
  const payload = `${Buffer.from(source).toString('base64')}:${readFileSync(cache).toString('base64')}`;
  const loader = `#!/usr/bin/env node
// myhv, bundled: the CommonJS bundle of apps/myhv (in the comment at the end of this file), compiled with V8's
// code cache made at build time.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

const file = fileURLToPath(import.meta.url);
const text = readFileSync(file, 'latin1');
const start = text.lastIndexOf('/*${PAYLOAD_MARKER}') + ${PAYLOAD_MARKER.length + 2};
const [source, cachedData] = text.slice(start, text.lastIndexOf('*/')).split(':');
const script = new Script(Buffer.from(source, 'base64').toString('utf8'), {
  filename: file,
  cachedData: Buffer.from(cachedData, 'base64'),
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
/*${PAYLOAD_MARKER}${payload}*/
`;
  rmSync(dirname(target), { recursive: true, force: true });
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, loader);
  chmodSync(target, 0o755);
}
