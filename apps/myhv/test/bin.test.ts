import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../dist/myhv.js', import.meta.url));
const run = promisify(execFile);

describe.skipIf(!existsSync(bin))('bundled myhv binary', () => {
  it('prints its version with node alone, from a directory outside the workspace', async () => {
    const { stdout } = await run(process.execPath, [bin, '--version'], { cwd: '/' });
    expect(stdout).toMatch(/^myhv \d+\.\d+\.\d+/);
  });

  it('exits 2 on an unknown command', async () => {
    await expect(run(process.execPath, [bin, 'nonsense'], { cwd: '/' })).rejects.toMatchObject({ code: 2 });
  });
});
