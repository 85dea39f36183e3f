import {
  chmodSync,
  chownSync,
  lchownSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assertTrustedDir, ensurePrivateDir, findUnsafePermissions } from './dir-trust.js';
import { VmManagerError } from './errors.js';

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;
if (!isRoot)
  console.warn('skipped: directories owned by another user, because this is not root (chown needs it)');

let base: string;
beforeEach(() => {
  // mkdtemp: 0700, ours, in sticky /tmp — a safe place to start from.
  base = mkdtempSync(join(tmpdir(), 'myhv-dir-trust-'));
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

function dir(name: string, mode = 0o700): string {
  const path = join(base, name);
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode);
  return path;
}

function refusal(fn: () => unknown): VmManagerError {
  try {
    fn();
  } catch (error) {
    expect(VmManagerError.isInstance(error), String(error)).toBe(true);
    return error as VmManagerError;
  }
  throw new Error('not refused');
}

describe('assertTrustedDir', () => {
  it('accepts a private directory, and one not made yet, under sticky /tmp', () => {
    expect(() => assertTrustedDir(dir('state'))).not.toThrow();
    expect(() => assertTrustedDir(join(base, 'not', 'yet'))).not.toThrow();
  });

  it('refuses a directory group or others can write, naming it, its mode and the fix', () => {
    for (const mode of [0o777, 0o770, 0o702]) {
      const path = dir(`state-${mode.toString(8)}`, mode);
      const error = refusal(() => assertTrustedDir(path, 'the state directory'));
      expect(error.code).toBe('UNSAFE_PERMISSIONS');
      expect(error.details).toMatchObject({ path, mode, uid: process.geteuid?.() });
      expect(error.details.fix).toBe(`chown root: ${path} && chmod 700 ${path}`);
      expect(error.message).toContain(path);
    }
  });

  it('refuses a directory on the way that others can write unless it is sticky', () => {
    const open = dir('open', 0o777);
    const error = refusal(() => assertTrustedDir(join(open, 'state')));
    expect(error.details).toMatchObject({ path: open, mode: 0o777 });
    expect(error.details.fix).toBe(`chown root: ${open} && chmod go-w ${open}`);
    // Not yet made there counts too: whoever can write `open` could make it first.
    expect(refusal(() => assertTrustedDir(join(open, 'new', 'state'))).details.path).toBe(open);

    const sticky = dir('sticky', 0o1777);
    expect(() => assertTrustedDir(dir('sticky/state'))).not.toThrow();
    // Sticky is enough only on the way: the directory itself must not be writable.
    expect(refusal(() => assertTrustedDir(sticky)).details.path).toBe(sticky);
  });

  it.skipIf(!isRoot)('refuses a directory, or one on the way, that another user owns', () => {
    const theirs = dir('theirs');
    chownSync(theirs, NOBODY, NOBODY);
    expect(refusal(() => assertTrustedDir(theirs)).details).toMatchObject({ path: theirs, uid: NOBODY });
    const inside = dir('theirs/state');
    expect(refusal(() => assertTrustedDir(inside)).details).toMatchObject({ path: theirs, uid: NOBODY });
  });

  it.skipIf(!isRoot)(
    'follows links by hand: a link another user owns, or an unsafe target, is refused',
    () => {
      const safe = dir('safe');
      const ours = join(base, 'ours');
      symlinkSync(safe, ours);
      expect(() => assertTrustedDir(ours)).not.toThrow();

      const theirs = join(base, 'theirs');
      symlinkSync(safe, theirs);
      lchownSync(theirs, NOBODY, NOBODY);
      expect(refusal(() => assertTrustedDir(join(theirs, 'state'))).details).toMatchObject({
        path: theirs,
        uid: NOBODY,
      });

      const open = dir('open', 0o777);
      const toOpen = join(base, 'to-open');
      symlinkSync('open', toOpen);
      expect(refusal(() => assertTrustedDir(toOpen)).details.path).toBe(open);
    },
  );
});

describe('ensurePrivateDir', () => {
  it('makes every missing directory 0700 whatever the umask, and keeps refusing unsafe ones', () => {
    const old = process.umask(0o777);
    try {
      ensurePrivateDir(join(base, 'a', 'b'));
      process.umask(0);
      ensurePrivateDir(join(base, 'c'));
    } finally {
      process.umask(old);
    }
    for (const path of ['a', 'a/b', 'c']) expect(statSync(join(base, path)).mode & 0o7777).toBe(0o700);
    const open = dir('open', 0o777);
    expect(refusal(() => ensurePrivateDir(open)).code).toBe('UNSAFE_PERMISSIONS');
    expect(refusal(() => ensurePrivateDir(join(open, 'x'))).details.path).toBe(open);
  });
});

describe('findUnsafePermissions', () => {
  it('lists every file and directory under a tree that others own or could write', () => {
    const state = dir('state');
    expect(findUnsafePermissions(state)).toEqual([]);
    writeFileSync(join(state, 'ok'), '', { mode: 0o600 });
    writeFileSync(join(state, 'open-file'), '');
    chmodSync(join(state, 'open-file'), 0o666);
    dir('state/open-dir', 0o777);
    dir('state/vms/x');
    writeFileSync(join(state, 'vms/x/state.json'), '');
    chmodSync(join(state, 'vms/x/state.json'), 0o620);
    expect(findUnsafePermissions(state).map((f) => [f.path, f.mode])).toEqual([
      [join(state, 'open-dir'), 0o777],
      [join(state, 'open-file'), 0o666],
      [join(state, 'vms/x/state.json'), 0o620],
    ]);
    expect(findUnsafePermissions(state)[1]!.fix).toBe(
      `chown root: ${join(state, 'open-file')} && chmod 600 ${join(state, 'open-file')}`,
    );
    // An unsafe directory on the way is the one finding: nothing under it can be trusted.
    chmodSync(base, 0o777);
    expect(findUnsafePermissions(state).map((f) => f.path)).toEqual([base]);
  });
});
