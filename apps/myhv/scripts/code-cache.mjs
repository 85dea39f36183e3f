// Run by scripts/pack-bundle.ts in a fresh `node`: compiles the bundle the way dist/myhv.js will, runs the
// commands whose start-up matters (so V8 compiles the functions they use), and writes V8's code cache.
// Usage: node code-cache.mjs <wrapped-bundle.cjs> <out.cache> <filename>
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
// A few VMs, so that listing them (read, parse, listing cache, JSON and table output) is compiled too. The shape is
// vm-manager's state record; were it to drift, these would list as unreadable and only warm-up would suffer.
for (let i = 0; i < 3; i++) {
  const name = `vm-${i}`;
  const id = `00000000000${i}`;
  const ip = `10.62.0.${i + 2}`;
  const now = new Date().toISOString();
  const forward = { protocol: 'tcp', hostPort: 20_000 + i, guestPort: 80 };
  const record = {
    schema: 1,
    id,
    name,
    spec: {
      name,
      cpus: 1,
      memory: 536870912,
      kernel: '/var/lib/myhv/vmlinux',
      cmdline: 'console=ttyS0 reboot=k panic=1',
      disks: [],
      shares: [],
      network: { enabled: true, queues: 1, forwards: [forward], mycelium: false },
      vmm: { extraArgs: [] },
    },
    status: 'stopped',
    createdAt: now,
    updatedAt: now,
    resources: {
      ip,
      tap: `myhv${id.slice(0, 11)}`,
      forwards: [{ ...forward, guestIp: ip, owner: `myhv-${id}` }],
      shares: [],
    },
  };
  mkdirSync(join(stateDir, 'state/vms', name), { recursive: true });
  writeFileSync(join(stateDir, 'state/vms', name, 'state.json'), JSON.stringify(record));
}
try {
  // The loader's own calls (writing nothing, to this script's stdout and stderr).
  const stdio = module.exports.processStdio();
  stdio.stdout.write('');
  stdio.stderr.write('');
  await stdio.flushed();
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
