// Run by scripts/pack-bundle.ts in a fresh `node`: compiles the bundle the way dist/myhv.js will, runs the
// commands whose start-up matters (so V8 compiles the functions they use), and writes V8's code cache.
// Usage: node code-cache.mjs <bundle.cjs> <wrapper-prefix-file> <out.cache> <filename>
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { Script } from 'node:vm';

const [bundlePath, outPath, filename] = process.argv.slice(2);
const source = readFileSync(bundlePath, 'utf8');
const script = new Script(source, { filename });
const module = { exports: {} };
script.runInThisContext()(module.exports, createRequire(filename), module, filename, dirname(filename));
const sink = () => new Writable({ write: (_chunk, _encoding, done) => done() });
const stateDir = mkdtempSync(join(tmpdir(), 'myhv-code-cache-'));
try {
  for (const argv of [
    ['version'],
    ['--help'],
    ['--state-dir', join(stateDir, 'state'), 'vm', 'ls', '--json'],
    ['--state-dir', join(stateDir, 'state'), 'vm', 'ls'],
  ]) {
    await module.exports.main(argv, filename, { stdout: sink(), stderr: sink() });
  }
} finally {
  rmSync(stateDir, { recursive: true, force: true });
}
writeFileSync(outPath, script.createCachedData());
