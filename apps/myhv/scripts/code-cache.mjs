// Run by scripts/pack-bundle.ts in a fresh `node`: compiles the bundle the way dist/myhv.js will, runs the
// commands whose start-up matters (so V8 compiles the functions they use), and writes V8's code cache.
// Usage: node code-cache.mjs <wrapped-bundle.cjs> <out.cache> <filename> <state-dir>
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';
import { Script } from 'node:vm';

// stateDir holds a few VMs (written by bench/seed-state.ts through vm-manager), so that listing them (read, parse,
// listing cache, JSON and table output) is compiled too.
const [bundlePath, outPath, filename, stateDir] = process.argv.slice(2);
const source = readFileSync(bundlePath, 'utf8');
const script = new Script(source, { filename });
const module = { exports: {} };
script.runInThisContext()(module.exports, createRequire(filename), module, filename, dirname(filename));
const sink = () => new Writable({ write: (_chunk, _encoding, done) => done() });
// The loader's own calls (writing nothing, to this script's stdout and stderr).
const stdio = module.exports.processStdio();
stdio.stdout.write('');
stdio.stderr.write('');
await stdio.flushed();
for (const argv of [
  ['version'],
  ['--help'],
  ['--state-dir', stateDir, 'vm', 'ls', '--json'],
  ['--state-dir', stateDir, 'vm', 'ls'],
]) {
  await module.exports.main(argv, filename, { stdout: sink(), stderr: sink() });
}
writeFileSync(outPath, script.createCachedData());
