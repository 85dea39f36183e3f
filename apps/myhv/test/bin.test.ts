import { execFile } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { seedState } from '../bench/seed-state.js';
import { bin } from './myhv.js';

const run = promisify(execFile);

// The bundle is built by the global setup, so these never skip.
describe('bundled myhv binary', () => {
  const dir = mkdtempSync(join(tmpdir(), 'myhv-bin-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is one file: dist/ holds myhv.js, the package.json that makes it a CommonJS script, and the dashboard', () => {
    expect(readdirSync(join(bin, '..')).sort()).toEqual(['etcd3-proto', 'myhv.js', 'package.json', 'ui']);
    // The dashboard's front end (only `myhvd --dashboard` reads it): its page and hashed assets.
    expect(readdirSync(join(bin, '../ui')).sort()).toEqual(['assets', 'index.html']);
    expect(JSON.parse(readFileSync(join(bin, '../package.json'), 'utf8'))).toEqual({ type: 'commonjs' });
  });

  it('runs from a copy with nothing beside it, with node alone', async () => {
    const copy = join(dir, 'myhv.js');
    copyFileSync(bin, copy);
    const { stdout } = await run(process.execPath, [copy, '--version'], {
      cwd: dir,
      env: { PATH: '/usr/bin:/bin' },
    });
    expect(stdout).toMatch(/^myhv \d+\.\d+\.\d+\n$/);
    const listed = await run(
      process.execPath,
      [copy, '--json', '--state-dir', join(dir, 'state'), 'vm', 'ls'],
      {
        cwd: dir,
        env: { PATH: '/usr/bin:/bin' },
      },
    );
    expect(JSON.parse(listed.stdout)).toEqual({ vms: [], unreadable: [] });
  });

  it('runs as an ES module too, should a copy land in a "type": "module" package', async () => {
    const esm = join(dir, 'esm');
    mkdirSync(esm);
    writeFileSync(join(esm, 'package.json'), '{ "type": "module" }\n');
    copyFileSync(bin, join(esm, 'myhv.js'));
    const { stdout } = await run(process.execPath, [join(esm, 'myhv.js'), 'version'], {
      cwd: esm,
      env: { PATH: '/usr/bin:/bin' },
    });
    expect(stdout).toMatch(/^myhv \d+\.\d+\.\d+\n$/);
  });

  it('ends quietly, exit 0, when the reader of its output goes away early (EPIPE)', async () => {
    const state = join(dir, 'epipe');
    await seedState(state, 300); // ~90 KB of JSON: more than a pipe holds
    // myhv's exit code is reported on stderr, after anything it wrote there itself.
    const { stdout, stderr } = await run(
      'sh',
      ['-c', '{ "$0" "$1" --json vm ls; echo "exit $?" >&2; } | head -c 8', process.execPath, bin],
      { cwd: dir, env: { PATH: '/usr/bin:/bin', MYHV_STATE_DIR: state } },
    );
    expect(stdout).toBe('{"vms":[');
    expect(stderr).toBe('exit 0\n');
  }, 60_000);

  it('exits 2 on an unknown command', async () => {
    await expect(run(process.execPath, [bin, 'nonsense'], { cwd: '/' })).rejects.toMatchObject({ code: 2 });
  });
});
