import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { seedState } from '../bench/seed-state.js';

const app = fileURLToPath(new URL('..', import.meta.url));

/** Where tsup writes the CommonJS bundle before it is packed (ignored by git, like all of node_modules). */
export const intermediateDir = join(app, 'node_modules/.cache/myhv-pack');

/**
 * Packs the CommonJS bundle into the one file users run, dist/myhv.js: a small loader followed by a comment that
 * holds V8's code cache (base64) and the bundle's source. Loading then skips compiling ~1 MB of JavaScript (the
 * slowest part of start-up); on another Node version V8 rejects the cache and compiles as usual.
 *
 * The file is a CommonJS script (dist/package.json says so; a copy elsewhere is CommonJS by default): Node's ES
 * module loader alone costs ~7 ms at start-up. It is written to run as an ES module too (no require, no imports),
 * should a copy land in a `"type": "module"` scope.
 */
export async function packBundle(): Promise<void> {
  const bundle = join(intermediateDir, 'myhv.cjs');
  const target = join(app, 'dist/myhv.js');
  const wrapped = join(intermediateDir, 'wrapped.cjs');
  const cache = join(intermediateDir, 'myhv.cache');
  const bundleText = readFileSync(bundle, 'utf8');
  // esbuild escapes everything outside ASCII; an ASCII file is one that Node decodes fastest, into a one-byte
  // string (the code cache is base64 for the same reason).
  if (/[\u0080-\uffff]/.test(bundleText)) throw new Error(`${bundle} is not ASCII`);
  // The same text the loader compiles: the bundle as the body of a CommonJS module function.
  const source = `(function (exports, require, module, __filename, __dirname) {${bundleText}\n})`;
  writeFileSync(wrapped, source);
  // A few VMs for the warm-up to list, written by vm-manager's own parser and StateStore (the benchmark's seeding).
  const stateDir = mkdtempSync(join(tmpdir(), 'myhv-code-cache-'));
  let made: SpawnSyncReturns<string>;
  try {
    await seedState(stateDir, 3);
    made = spawnSync(
      process.execPath,
      [join(app, 'scripts/code-cache.mjs'), wrapped, cache, target, stateDir],
      {
        encoding: 'utf8',
      },
    );
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
  if (made.status !== 0) throw new Error(`making the code cache failed:\n${made.stdout}\n${made.stderr}`);
  const cacheText = readFileSync(cache).toString('base64');
  // The source travels as it is inside the comment (V8 skips a comment far faster than it scans a string literal
  // or a module), except that `*/` would end the comment early: it is written as `*<escape>/`, where the escape is
  // a control character the source does not contain.
  const escapeChar = ['\x01', '\x02', '\x03', '\x04', '\x05', '\x06'].find((c) => !source.includes(c));
  if (!escapeChar) throw new Error('no free escape character for the payload');
  const escaped = source.replaceAll('*/', `*${escapeChar}/`);
  // The payload is the body of a function that is never called: its text is then already in memory as the source
  // of this very file, and `payload.toString()` hands it over without reading the file again. Positions are
  // counted from the end of that text.
  const tail = '*/}';
  const layout = {
    cache: escaped.length + 1 + cacheText.length + tail.length,
    cacheLength: cacheText.length,
    source: escaped.length + tail.length,
    sourceLength: escaped.length,
  };
  const slice = `text.slice(end - ${layout.source}, end - ${layout.source} + ${layout.sourceLength})`;
  const sourceLine = source.includes('*/')
    ? `const source = ${slice}.replaceAll(${JSON.stringify(`*${escapeChar}/`)}, '*/');`
    : `const source = ${slice};`;
  const loader = `#!/usr/bin/env node
// myhv, bundled: the CommonJS bundle of apps/myhv (in the comment at the end of this file), compiled with V8's
// code cache made at build time.
'use strict';
const { createRequire } = process.getBuiltinModule('node:module');
const { dirname } = process.getBuiltinModule('node:path');
const { Script } = process.getBuiltinModule('node:vm');

const file = typeof __filename === 'string' ? __filename : process.argv[1];
const text = payload.toString();
const end = text.length;
${sourceLine}
const cache = text.slice(end - ${layout.cache}, end - ${layout.cache} + ${layout.cacheLength});
const script = new Script(source, { filename: file, cachedData: Buffer.from(cache, 'base64') });
const bundle = { exports: {} };
script.runInThisContext()(bundle.exports, createRequire(file), bundle, file, dirname(file));
// stdout and stderr as plain writes where they are pipes or files (see src/stdio.ts).
const stdio = bundle.exports.processStdio();
// A command whose last await waits on nothing that holds the event loop open would end here with exit code 0, its
// work half-done. Never report that as success.
let finished = false;
process.on('exit', (code) => {
  if (finished || code !== 0) return;
  process.getBuiltinModule('node:fs').writeSync(2, 'myhv: error: internal: the command ended before it finished; run \`myhv gc\` to tidy up what it left\\n');
  process.exitCode = 1;
});
bundle.exports
  .main(process.argv.slice(2), file, stdio)
  .then((code) => {
    finished = true;
    return stdio.flushed().then(() => code);
  })
  // Exit once the output is out (a large JSON document on a pipe must not be cut short), and not later: a handle a
  // command left open must not keep the CLI alive.
  .then((code) => process.exit(code));

function payload() {/*${cacheText}
${escaped}${tail}
`;
  rmSync(dirname(target), { recursive: true, force: true });
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, loader);
  chmodSync(target, 0o755);
  // Without this, dist/myhv.js would be an ES module (apps/myhv is "type": "module").
  writeFileSync(join(dirname(target), 'package.json'), '{ "type": "commonjs" }\n');
  copyDashboardUi(join(dirname(target), 'ui'));
  copyEtcdProtos(join(dirname(target), ETCD_PROTO_DIR));
}

/** Where the bundle finds the etcd3 client's .proto files (it reads them when cluster mode first connects). */
export const ETCD_PROTO_DIR = 'etcd3-proto';

/** etcd3's protocol files, beside the bundle (see the etcd3-proto-path plugin in tsup.config.ts). */
function copyEtcdProtos(target: string): void {
  const cluster = createRequire(import.meta.url).resolve('@my-hypervisor/cluster/package.json');
  const main = createRequire(cluster).resolve('etcd3');
  cpSync(join(dirname(main), '../proto'), target, { recursive: true });
}

/**
 * The dashboard's built front end, beside the bundle: the bundled dashboard code looks for it at `dist/ui` relative
 * to its own file (`defaultUiDir`), which in the bundle is dist/myhv.js.
 */
function copyDashboardUi(target: string): void {
  const pkg = createRequire(import.meta.url).resolve('@my-hypervisor/dashboard/package.json');
  const source = join(dirname(pkg), 'dist/ui');
  if (!existsSync(join(source, 'index.html'))) {
    throw new Error(
      `${source} is missing: build @my-hypervisor/dashboard first (turbo does, as a dependency)`,
    );
  }
  cpSync(source, target, { recursive: true });
}
