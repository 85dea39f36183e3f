import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { hasTool } from '../test/fixtures.js';
import { type CpioEntry, readCpio, writeCpio } from './cpio.js';
import { GuestImageError } from './errors.js';

const entries: CpioEntry[] = [
  { type: 'dir', path: 'bin' },
  { type: 'dir', path: 'dev', mode: 0o755 },
  { type: 'dir', path: 'tmp', mode: 0o1777 },
  { type: 'char', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
  { type: 'block', path: 'dev/vda', major: 254, minor: 0 },
  { type: 'file', path: 'bin/busybox', mode: 0o755, data: new TextEncoder().encode('not really busybox') },
  { type: 'file', path: 'empty', data: new Uint8Array(0) },
  { type: 'file', path: 'odd-size', mode: 0o4755, data: Uint8Array.of(1, 2, 3, 4, 5) },
  { type: 'symlink', path: 'bin/sh', target: 'busybox' },
  { type: 'symlink', path: 'init', target: '/bin/sh' },
];

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    if (!GuestImageError.isInstance(error)) throw error;
    return error.code;
  }
}

describe('writeCpio / readCpio', () => {
  it('round-trips entries with their types, modes, device numbers, link targets and data', () => {
    const listed = readCpio(writeCpio(entries, { mtime: 1_700_000_000 }));
    expect(listed.map((e) => [e.type, e.path, e.mode])).toEqual([
      ['dir', 'bin', 0o755],
      ['dir', 'dev', 0o755],
      ['dir', 'tmp', 0o1777],
      ['char', 'dev/console', 0o600],
      ['block', 'dev/vda', 0o600],
      ['file', 'bin/busybox', 0o755],
      ['file', 'empty', 0o644],
      ['file', 'odd-size', 0o4755],
      ['symlink', 'bin/sh', 0o777],
      ['symlink', 'init', 0o777],
    ]);
    const byPath = new Map(listed.map((e) => [e.path, e]));
    expect(byPath.get('dev/console')).toMatchObject({ major: 5, minor: 1, uid: 0, gid: 0 });
    expect(byPath.get('dev/vda')).toMatchObject({ major: 254, minor: 0 });
    expect(byPath.get('bin/sh')?.target).toBe('busybox');
    expect(byPath.get('init')?.target).toBe('/bin/sh');
    expect(byPath.get('odd-size')?.data).toEqual(Uint8Array.of(1, 2, 3, 4, 5));
    expect(byPath.get('empty')?.size).toBe(0);
    expect(listed.every((e) => e.mtime === 1_700_000_000)).toBe(true);
  });

  it('is reproducible and 4-byte aligned', () => {
    const a = writeCpio(entries);
    expect(writeCpio(entries)).toEqual(a);
    expect(a.length % 4).toBe(0);
    expect(new TextDecoder().decode(a.subarray(a.length - 124))).toContain('TRAILER!!!');
  });

  it.each([
    ['an absolute path', { type: 'dir', path: '/etc' }],
    ['a path with ..', { type: 'dir', path: 'etc/../..' }],
    ['an empty path', { type: 'dir', path: '' }],
    ['a mode with file-type bits', { type: 'file', path: 'x', mode: 0o100644, data: new Uint8Array(0) }],
    ['a negative device number', { type: 'char', path: 'c', major: -1, minor: 0 }],
    ['an empty link target', { type: 'symlink', path: 'l', target: '' }],
  ] as [string, CpioEntry][])('refuses %s (INVALID_ARGUMENT)', (_title, entry) => {
    expect(codeOf(() => writeCpio([entry]))).toBe('INVALID_ARGUMENT');
  });

  it('refuses the same path twice', () => {
    expect(
      codeOf(() =>
        writeCpio([
          { type: 'dir', path: 'a' },
          { type: 'dir', path: 'a' },
        ]),
      ),
    ).toBe('INVALID_ARGUMENT');
  });

  it('reports a truncated or foreign archive', () => {
    const archive = writeCpio(entries);
    expect(codeOf(() => readCpio(archive.subarray(0, 200)))).toBe('TRUNCATED');
    expect(codeOf(() => readCpio(archive.subarray(0, archive.length - 8)))).toBe('TRUNCATED');
    expect(codeOf(() => readCpio(new TextEncoder().encode('x'.repeat(200))))).toBe('CORRUPT_IMAGE');
  });

  const lister = hasTool('cpio') ? ['cpio'] : hasTool('busybox') ? ['busybox', 'cpio'] : undefined;
  if (lister === undefined) console.log('skipping the cpio -t check: neither cpio nor busybox is installed');
  it.skipIf(lister === undefined)(`lists the same entries with the system's ${lister?.join(' ')} -t`, () => {
    const [file = 'cpio', ...args] = lister ?? [];
    const out = execFileSync(file, [...args, '-t'], {
      input: writeCpio(entries),
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    expect(out.toString().trim().split('\n')).toEqual(entries.map((e) => e.path));
    const verbose = execFileSync(file, [...args, '-tv'], {
      input: writeCpio(entries),
      stdio: ['pipe', 'pipe', 'ignore'],
    })
      .toString()
      .split('\n');
    // busybox prints no device numbers; the round-trip test above checks them.
    expect(verbose.find((line) => line.endsWith('dev/console'))).toMatch(/^crw-------\s/);
    expect(verbose.find((line) => line.endsWith('tmp'))).toMatch(/^drwxrwxrwt\s/);
    expect(verbose.find((line) => line.includes('bin/sh'))).toMatch(/^lrwxrwxrwx.*bin\/sh -> busybox/);
  });
});
