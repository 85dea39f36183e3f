#!/usr/bin/env node
// Installs the packages as a user would: packs every publishable workspace package once (`pnpm pack`), then, each in
// a fresh project outside the workspace with plain npm,
// - installs each tarball alone, imports every JavaScript entry point of its exports map and runs each bin --version;
// - installs what each example under examples/ names and runs its `npm test` with plain node.
// @my-hypervisor/* dependencies resolve to the local tarballs (npm `overrides`), never to the registry; everything
// else (zod, execa, vitest, …) comes from the registry. Prints one line per check with its times; a failure prints
// the command's whole output, keeps its directory and exits 1. Build first (`pnpm check:tarballs` does).
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';

const root = new URL('..', import.meta.url).pathname;
const examplesDir = join(root, 'examples');
const concurrency = Number(process.env.MYHV_TARBALL_JOBS ?? 3);
// Run npm as a user's shell would: without the variables pnpm sets for scripts (user agent, package name, …).
const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/^(npm_(?!config_(registry|cache)$)|pnpm_|PNPM_)/i.test(k)),
);
const npmInstall = [
  'install',
  '--no-audit',
  '--no-fund',
  '--no-package-lock',
  '--prefer-offline',
  '--loglevel=error',
];

/** Runs a command; resolves with its combined output and the time it took, rejects with both on failure. */
function run(command, args, cwd, shown = `${command} ${args.join(' ')}`) {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const result = { output, seconds: (performance.now() - started) / 1000 };
      if (code === 0) resolve(result);
      else reject(Object.assign(new Error(`${shown} exited ${code ?? signal}`), result));
    });
  });
}

async function pool(items, worker) {
  const queue = [...items];
  const lanes = Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
    while (queue.length) await worker(queue.shift());
  });
  await Promise.all(lanes);
}

const started = performance.now();
const work = mkdtempSync(join(tmpdir(), 'myhv-tarballs-'));
const tarballDir = join(work, 'tarballs');
mkdirSync(tarballDir);

// Every non-private workspace package, found by pnpm, so a new package is covered the day it lands.
const listing = JSON.parse((await run('pnpm', ['-r', 'ls', '--depth', '-1', '--json'], root)).output);
const workspace = listing.filter((p) => p.path !== root.replace(/\/$/, '') && !p.private);
const tarballs = new Map();
await Promise.all(
  workspace.map(async ({ name, path }) => {
    const { output } = await run('pnpm', ['pack', '--pack-destination', tarballDir, '--json'], path);
    tarballs.set(name, JSON.parse(output.slice(output.indexOf('{'))).filename);
  }),
);
console.log(
  `check-tarballs: packed ${tarballs.size} packages in ${((performance.now() - started) / 1000).toFixed(1)} s`,
);
const overrides = Object.fromEntries([...tarballs].map(([name, file]) => [name, `file:${file}`]));

/** A fresh npm project in `dir` from `manifest`, its @my-hypervisor/* dependencies pointed at the tarballs. */
function writeProject(dir, manifest) {
  for (const field of ['dependencies', 'devDependencies']) {
    for (const name of Object.keys(manifest[field] ?? {})) {
      if (!name.startsWith('@my-hypervisor/')) continue;
      if (!overrides[name]) throw new Error(`${dir}: ${name} is not a publishable workspace package`);
      manifest[field][name] = overrides[name];
    }
  }
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ ...manifest, overrides }, null, 2)}\n`);
}

/** The JavaScript entry points of an exports map (not ./package.json or data files). */
function entryPoints(exportsMap) {
  return Object.entries(exportsMap ?? { '.': './index.js' })
    .filter(([, target]) => /\.[cm]?js$/.test(typeof target === 'string' ? target : (target.default ?? '')))
    .map(([subpath]) => subpath);
}

const checks = [
  ...[...tarballs.keys()].map((name) => ({ label: `${name} alone`, name })),
  ...readdirSync(examplesDir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => ({ label: `examples/${d.name}`, example: d.name })),
];
const failures = [];

await pool(checks, async (check) => {
  const dir = mkdtempSync(join(work, 'project-'));
  let install;
  try {
    let ran;
    if (check.example) {
      cpSync(join(examplesDir, check.example), dir, {
        recursive: true,
        filter: (f) => !f.includes('node_modules'),
      });
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      if (!manifest.scripts?.test)
        throw new Error(`examples/${check.example}/package.json has no test script`);
      writeProject(dir, manifest);
      install = await run('npm', npmInstall, dir);
      ran = await run('npm', ['test', '--silent'], dir);
    } else {
      writeProject(dir, {
        name: 'tarball-check',
        private: true,
        type: 'module',
        dependencies: { [check.name]: '*' },
      });
      install = await run('npm', npmInstall, dir);
      const manifest = JSON.parse(
        readFileSync(join(dir, 'node_modules', check.name, 'package.json'), 'utf8'),
      );
      const optionalPeers = Object.keys(manifest.peerDependenciesMeta ?? {});
      // An entry point that needs an optional peer (a conformance kit needs vitest) is reported, not failed.
      const script = `for (const s of ${JSON.stringify(entryPoints(manifest.exports))}) {
        const id = s === '.' ? ${JSON.stringify(check.name)} : ${JSON.stringify(check.name)} + s.slice(1);
        try { await import(id); console.log('imports ' + id); }
        catch (e) { const peer = ${JSON.stringify(optionalPeers)}.find((p) => e.code === 'ERR_MODULE_NOT_FOUND' && e.message.includes("'" + p + "'"));
          if (!peer) throw e; console.log('imports ' + id + ' only with its optional peer ' + peer); } }`;
      ran = await run(
        process.execPath,
        ['--input-type=module', '-e', script],
        dir,
        'node -e <import every entry point>',
      );
      // Every bin answers --version from node_modules/.bin, as npm linked it.
      for (const bin of Object.keys(manifest.bin ?? {})) {
        const { output } = await run(join(dir, 'node_modules', '.bin', bin), ['--version'], dir);
        ran.output += `runs ${bin} --version: ${output.trim().split('\n')[0]}\n`;
      }
    }
    const total = install.seconds + ran.seconds;
    console.log(
      `check-tarballs: ok ${check.label} in ${total.toFixed(1)} s (npm install ${install.seconds.toFixed(1)} s, run ${ran.seconds.toFixed(1)} s)`,
    );
    const said = stripVTControlCharacters(ran.output).trim();
    if (said) console.log(said.replace(/^/gm, '    '));
    rmSync(dir, { recursive: true, force: true });
  } catch (error) {
    failures.push(check.label);
    console.log(`check-tarballs: FAILED ${check.label}: ${error.message} (kept ${dir})`);
    if (error.output) console.log(error.output.replace(/^/gm, '    '));
    if (!error.output && error.stack) console.log(error.stack);
  }
});

const seconds = ((performance.now() - started) / 1000).toFixed(1);
if (failures.length) {
  console.log(
    `check-tarballs: ${failures.length} of ${checks.length} failed in ${seconds} s: ${failures.join(', ')}`,
  );
  console.log(`check-tarballs: tarballs and failed projects kept in ${work}`);
  process.exit(1);
}
rmSync(work, { recursive: true, force: true });
console.log(`check-tarballs: ${checks.length} checks passed in ${seconds} s`);
