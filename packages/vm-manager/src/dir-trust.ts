import { chmodSync, lstatSync, mkdirSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { VmManagerError } from './errors.js';

// Like sshd's StrictModes: whoever can write a state or run directory (or a record in one) can make the manager
// run their program as root — a record names the VMM binary, its arguments, the kernel — so such a directory is
// refused, never used.

/** A path that is not safe to trust, what is wrong with it, and the command that fixes it. */
export interface UnsafePermission {
  readonly path: string;
  /** Its owner. */
  readonly uid: number;
  /** Its permission bits (sticky bit included), e.g. `0o777`. */
  readonly mode: number;
  /** What is wrong, in words: `owned by uid 65534`, `writable by group or others`. */
  readonly problem: string;
  /** A shell command that makes it safe. */
  readonly fix: string;
}

/** How a path is used: a directory we keep things in, a directory on the way to one, or a file we read. */
type Role = 'dir' | 'ancestor' | 'file' | 'link';

const MAX_SYMLINKS = 40;

function euid(): number {
  return process.geteuid?.() ?? 0;
}

/** Root's, or ours when we are not root. */
function trustedOwner(uid: number): boolean {
  return uid === 0 || uid === euid();
}

/** What makes `stat` unsafe in `role`, or undefined. Only a directory on the way may be writable, and only sticky. */
function problemOf(stat: Stats, role: Role): string | undefined {
  if (!trustedOwner(stat.uid))
    return `owned by uid ${stat.uid}, not by ${euid() === 0 ? 'root' : `uid ${euid()}`}`;
  if (role === 'link') return undefined;
  if ((stat.mode & 0o022) === 0) return undefined;
  if (role === 'ancestor' && stat.isDirectory() && (stat.mode & 0o1000) !== 0) return undefined;
  return 'writable by group or others';
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(3, '0');
}

function fixFor(path: string, role: Role): string {
  const owner = euid() === 0 ? 'root:' : String(euid());
  const quoted = /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`;
  if (role === 'link') return `rm ${quoted} (a symbolic link owned by another user), and use the real path`;
  const chmod = role === 'dir' ? '700' : role === 'file' ? '600' : 'go-w';
  return `chown ${owner} ${quoted} && chmod ${chmod} ${quoted}`;
}

function unsafe(path: string, stat: Stats, role: Role): UnsafePermission | undefined {
  const problem = problemOf(stat, role);
  if (problem === undefined) return undefined;
  return { path, uid: stat.uid, mode: stat.mode & 0o7777, problem, fix: fixFor(path, role) };
}

/** The error for an unsafe path: names it (and the directory it was on the way to), what was found, the fix. */
export function unsafePermissionsError(
  found: UnsafePermission,
  what = 'it',
  requested: string = found.path,
): VmManagerError {
  const where = resolve(requested) === found.path ? 'it' : found.path;
  return new VmManagerError(
    'UNSAFE_PERMISSIONS',
    `refusing to use ${what} at ${requested}: ${where} is ${found.problem} (owner uid ${found.uid}, mode ` +
      `${octal(found.mode)}), and whoever can write there could make this process run their programs. ` +
      `Fix: ${found.fix}`,
    { details: { ...found } },
  );
}

/**
 * Walks `path` from `/` the way the kernel resolves it, following symbolic links by hand so that each link and
 * every directory on the way is seen. Returns the first unsafe component: the path itself (`role`, when it
 * exists) must be safe; a directory on the way may be writable only when sticky (`/tmp`); a link must be owned by
 * root or us. A missing path is judged by the directories that exist on the way (where it would be created).
 */
function unsafeOnPath(path: string, role: 'dir' | 'ancestor'): UnsafePermission | undefined {
  let todo = resolve(path).split('/').filter(Boolean);
  let current = '/';
  let links = 0;
  const root = unsafe('/', lstatSync('/'), todo.length === 0 ? role : 'ancestor');
  if (root) return root;
  while (todo.length > 0) {
    const name = todo.shift()!;
    if (name === '.') continue;
    if (name === '..') {
      current = dirname(current);
      continue;
    }
    const next = current === '/' ? `/${name}` : `${current}/${name}`;
    let stat: Stats;
    try {
      stat = lstatSync(next);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw error;
    }
    if (stat.isSymbolicLink()) {
      const bad = unsafe(next, stat, 'link');
      if (bad) return bad;
      // A loop: whatever then uses the path fails with ELOOP.
      if (++links > MAX_SYMLINKS) return undefined;
      const target = readlinkSync(next);
      if (target.startsWith('/')) current = '/';
      todo = [...target.split('/').filter(Boolean), ...todo];
      continue;
    }
    const bad = unsafe(next, stat, todo.length === 0 ? role : 'ancestor');
    if (bad) return bad;
    current = next;
  }
  return undefined;
}

/**
 * Refuses (UNSAFE_PERMISSIONS) a directory the manager keeps state or sockets in when it, or a directory or link on
 * the way to it, is owned by another user than root (or us, when not root) or writable by group or others — a
 * directory on the way may be writable when sticky, like /tmp. A directory that does not exist yet passes when it
 * could be created safely.
 */
export function assertTrustedDir(path: string, what = 'the directory'): void {
  const found = unsafeOnPath(path, 'dir');
  if (found) throw unsafePermissionsError(found, what, path);
}

/** Why the file, directory or link `stat` (an lstat or fstat) describes is not safe to trust, or undefined. */
export function unsafePermission(path: string, stat: Stats): UnsafePermission | undefined {
  return unsafe(path, stat, stat.isSymbolicLink() ? 'link' : stat.isDirectory() ? 'dir' : 'file');
}

/**
 * Creates `path` (and what is missing on the way) with mode 0700 whatever the umask, after checking that it can
 * be created safely, and checks the result: an existing directory keeps its mode but must be safe.
 */
export function ensurePrivateDir(path: string, what = 'the directory'): void {
  assertTrustedDir(path, what);
  const first = mkdirSync(path, { recursive: true, mode: 0o700 });
  if (first !== undefined) {
    // mkdir's mode is masked by the umask: set it on every directory this call made.
    const top = resolve(first);
    for (let dir = resolve(path); ; dir = dirname(dir)) {
      chmodSync(dir, 0o700);
      if (dir === top || dir === dirname(dir)) break;
    }
  }
  assertTrustedDir(path, what);
}

/**
 * Every unsafe path at or under `dir` and on the way to it (as `assertTrustedDir` and the file checks judge them),
 * for a diagnosis such as `myhv doctor`: directories, files, sockets and links found by walking the tree. Empty
 * when `dir` is safe or does not exist yet (and could be created safely). Stops after `limit` findings.
 */
export function findUnsafePermissions(
  dir: string,
  {
    limit = 100,
    vmmOwned,
  }: {
    limit?: number;
    /**
     * Uids of confined VMMs (`ownsVmmUid`): what they own under `dir` (a VM's run directory, its sockets) is theirs
     * by design, so it counts as safe unless group or others could write it.
     */
    vmmOwned?: (uid: number) => boolean;
  } = {},
): UnsafePermission[] {
  const first = unsafeOnPath(dir, 'dir');
  if (first) return [first];
  const found: UnsafePermission[] = [];
  const visit = (path: string) => {
    let names: string[];
    try {
      names = readdirSync(path);
    } catch {
      return;
    }
    for (const name of names.sort()) {
      if (found.length >= limit) return;
      const child = `${path}/${name}`;
      let stat: Stats;
      try {
        stat = lstatSync(child);
      } catch {
        continue;
      }
      const bad = unsafePermission(child, stat);
      if (bad && !(vmmOwned?.(stat.uid) && (stat.mode & 0o022) === 0)) found.push(bad);
      else if (stat.isDirectory()) visit(child);
    }
  };
  visit(resolve(dir));
  return found;
}
