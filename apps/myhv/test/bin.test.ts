import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { bin } from './myhv.js';

const run = promisify(execFile);

// The bundle is built by the global setup, so these never skip.
describe('bundled myhv binary', () => {
  const dir = mkdtempSync(join(tmpdir(), 'myhv-bin-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is one file: dist/ holds myhv.js only', () => {
    expect(readdirSync(join(bin, '..'))).toEqual(['myhv.js']);
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
    expect(JSON.parse(listed.stdout)).toEqual({ vms: [] });
  });

  it('exits 2 on an unknown command', async () => {
    await expect(run(process.execPath, [bin, 'nonsense'], { cwd: '/' })).rejects.toMatchObject({ code: 2 });
  });
});
