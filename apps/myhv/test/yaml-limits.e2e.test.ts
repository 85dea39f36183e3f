import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bin } from './myhv.js';

/** Ten levels of "billion laughs": `name` would expand to 10^10 strings. */
function billionLaughs(key: string): string {
  const lines = [`l0: &l0 [${Array(10).fill('"lol"').join(', ')}]`];
  for (let i = 1; i < 10; i++)
    lines.push(
      `l${i}: &l${i} [${Array(10)
        .fill(`*l${i - 1}`)
        .join(', ')}]`,
    );
  return `${lines.join('\n')}\n${key}: *l9\n`;
}

/**
 * Runs the bundle with its JavaScript heap capped at 64 MiB (a blow-up crashes it: not exit 2) and `stdin` as
 * its standard input; resolves with the exit code, stderr and the time it took.
 */
function myhvCapped(args: readonly string[], stdin: 'ignore' | number = 'ignore') {
  const started = performance.now();
  const result = spawnSync(process.execPath, [bin, ...args], {
    cwd: '/',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_OPTIONS: '--max-old-space-size=64' },
    stdio: [stdin, 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: result.status, stderr: result.stderr, ms: performance.now() - started };
}

// No root needed: the files are refused before any setting or VMM is looked at.
describe('spec and config files: alias bombs and size', () => {
  const dir = mkdtempSync(join(tmpdir(), 'myhv-yaml-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const state = ['--state-dir', join(dir, 'state'), '--vmm-binary', 'simulator'];

  it('a billion-laughs spec file exits 2 naming the file, quickly and in little memory', () => {
    const bomb = join(dir, 'bomb.yaml');
    writeFileSync(bomb, billionLaughs('name'));
    const result = myhvCapped([...state, 'vm', 'create', '-f', bomb]);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain(`--file ${bomb}: `);
    expect(result.ms).toBeLessThan(2_000);
    expect(existsSync(join(dir, 'state'))).toBe(false);
  });

  it('a billion-laughs config file exits 2 naming the file', () => {
    const bomb = join(dir, 'config.yaml');
    writeFileSync(bomb, billionLaughs('stateDir'));
    const result = myhvCapped(['--config', bomb, 'vm', 'ls']);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain(`config ${bomb}: `);
    expect(result.ms).toBeLessThan(2_000);
  });

  it.skipIf(!existsSync('/dev/zero'))(
    'input without end (/dev/zero as the file or stdin) stops at 1 MiB',
    () => {
      const asFile = myhvCapped([...state, 'vm', 'create', '-f', '/dev/zero']);
      expect(asFile.code, asFile.stderr).toBe(2);
      expect(asFile.stderr).toMatch(/--file: \/dev\/zero is larger than 1 MiB/);
      const zero = openSync('/dev/zero', 'r');
      try {
        const asStdin = myhvCapped([...state, 'vm', 'create', '-f', '-'], zero);
        expect(asStdin.code, asStdin.stderr).toBe(2);
        expect(asStdin.stderr).toMatch(/--file: stdin is larger than 1 MiB/);
      } finally {
        closeSync(zero);
      }
      const asConfig = myhvCapped(['--config', '/dev/zero', 'vm', 'ls']);
      expect(asConfig.code, asConfig.stderr).toBe(2);
      expect(asConfig.stderr).toMatch(/config \/dev\/zero: is larger than 1 MiB/);
    },
  );
});
