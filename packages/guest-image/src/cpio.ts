import { GuestImageError, invalidArgument } from './errors.js';

/**
 * The newc ("070701") cpio format the kernel unpacks an initramfs from (Documentation/driver-api/early-userspace/
 * buffer-format.rst). Written here rather than with `cpio`/`gen_init_cpio` so device nodes such as `/dev/console`
 * need no root and the archive is byte-for-byte reproducible (uid/gid 0, fixed mtime, inode numbers in order).
 */
export type CpioEntry =
  | { readonly type: 'dir'; readonly path: string; readonly mode?: number }
  | { readonly type: 'file'; readonly path: string; readonly mode?: number; readonly data: Uint8Array }
  | { readonly type: 'symlink'; readonly path: string; readonly target: string }
  | {
      readonly type: 'char' | 'block';
      readonly path: string;
      readonly mode?: number;
      readonly major: number;
      readonly minor: number;
    };

/** An entry as read back: its permission bits and owner as stored. */
export type CpioListing = {
  readonly type: CpioEntry['type'];
  readonly path: string;
  /** Permission bits (and setuid/setgid/sticky), without the file type. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly mtime: number;
  readonly size: number;
  /** For `char` and `block`. */
  readonly major?: number;
  readonly minor?: number;
  /** For `symlink`. */
  readonly target?: string;
  /** For `file`. */
  readonly data?: Uint8Array;
};

/** Options of `writeCpio`. */
export interface WriteCpioOptions {
  /** Seconds since the epoch stamped on every entry (default 0, for reproducible archives). */
  readonly mtime?: number;
}

const MAGIC = '070701';
const HEADER_BYTES = 110;
const TRAILER = 'TRAILER!!!';
const S_IFMT = 0o170000;
const TYPE_BITS = {
  dir: 0o040000,
  file: 0o100000,
  symlink: 0o120000,
  char: 0o020000,
  block: 0o060000,
} as const;
const DEFAULT_MODE = { dir: 0o755, file: 0o644, symlink: 0o777, char: 0o600, block: 0o600 } as const;
const MAX_FIELD = 0xffff_ffff;

/** A newc archive of `entries`, in the order given, ending with the `TRAILER!!!` entry. */
export function writeCpio(entries: readonly CpioEntry[], options: WriteCpioOptions = {}): Uint8Array {
  const mtime = options.mtime ?? 0;
  checkField('mtime', mtime);
  const chunks: Uint8Array[] = [];
  let length = 0;
  const push = (bytes: Uint8Array) => {
    chunks.push(bytes);
    length += bytes.length;
    const pad = (4 - (length % 4)) % 4;
    if (pad > 0) {
      chunks.push(new Uint8Array(pad));
      length += pad;
    }
  };
  const seen = new Set<string>();
  let ino = 1;
  for (const entry of entries) {
    const path = checkPath(entry.path);
    if (seen.has(path)) throw invalidArgument('path', `${path} is in the archive twice`);
    seen.add(path);
    const data =
      entry.type === 'file'
        ? entry.data
        : entry.type === 'symlink'
          ? new TextEncoder().encode(checkTarget(entry.target))
          : new Uint8Array(0);
    const perm = entry.type === 'symlink' ? DEFAULT_MODE.symlink : (entry.mode ?? DEFAULT_MODE[entry.type]);
    if (!Number.isInteger(perm) || perm < 0 || perm > 0o7777) {
      throw invalidArgument('mode', `${path}: ${perm} is not a permission mode (0 to 0o7777)`);
    }
    const device = entry.type === 'char' || entry.type === 'block' ? entry : { major: 0, minor: 0 };
    checkField('major', device.major);
    checkField('minor', device.minor);
    const header = encodeHeader({
      ino: ino++,
      mode: TYPE_BITS[entry.type] | perm,
      nlink: entry.type === 'dir' ? 2 : 1,
      mtime,
      size: data.length,
      rdevMajor: device.major,
      rdevMinor: device.minor,
      name: path,
    });
    push(header);
    push(data);
  }
  push(
    encodeHeader({ ino: 0, mode: 0, nlink: 1, mtime: 0, size: 0, rdevMajor: 0, rdevMinor: 0, name: TRAILER }),
  );
  const out = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

interface HeaderFields {
  readonly ino: number;
  readonly mode: number;
  readonly nlink: number;
  readonly mtime: number;
  readonly size: number;
  readonly rdevMajor: number;
  readonly rdevMinor: number;
  readonly name: string;
}

function encodeHeader(h: HeaderFields): Uint8Array {
  const name = new TextEncoder().encode(h.name);
  if (h.size > MAX_FIELD) throw invalidArgument('data', `${h.name} is larger than newc allows (4 GiB)`);
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
  const fields = [
    h.ino,
    h.mode,
    0,
    0,
    h.nlink,
    h.mtime,
    h.size,
    0,
    0,
    h.rdevMajor,
    h.rdevMinor,
    name.length + 1,
    0,
  ];
  const header = new TextEncoder().encode(MAGIC + fields.map(hex).join(''));
  const out = new Uint8Array(HEADER_BYTES + name.length + 1);
  out.set(header, 0);
  out.set(name, HEADER_BYTES);
  return out;
}

/** The entries of a newc archive, up to its trailer (what `cpio -t` would list, with modes and devices). */
export function readCpio(archive: Uint8Array): CpioListing[] {
  const entries: CpioListing[] = [];
  const decoder = new TextDecoder();
  let at = 0;
  for (;;) {
    if (at + HEADER_BYTES > archive.length) {
      throw new GuestImageError(
        'TRUNCATED',
        `the cpio archive ends at byte ${archive.length}, before its trailer`,
      );
    }
    const magic = decoder.decode(archive.subarray(at, at + 6));
    if (magic !== MAGIC && magic !== '070702') {
      throw new GuestImageError(
        'CORRUPT_IMAGE',
        `no newc cpio header at byte ${at} (found ${JSON.stringify(magic)})`,
      );
    }
    const field = (i: number) => {
      const text = decoder.decode(archive.subarray(at + 6 + i * 8, at + 14 + i * 8));
      if (!/^[0-9a-fA-F]{8}$/.test(text)) {
        throw new GuestImageError(
          'CORRUPT_IMAGE',
          `a cpio header at byte ${at} holds ${JSON.stringify(text)}`,
        );
      }
      return Number.parseInt(text, 16);
    };
    const mode = field(1);
    const size = field(6);
    const nameSize = field(11);
    const nameStart = at + HEADER_BYTES;
    const dataStart = align4(nameStart + nameSize);
    const dataEnd = dataStart + size;
    if (nameSize === 0 || dataEnd > archive.length) {
      throw new GuestImageError('TRUNCATED', `the cpio entry at byte ${at} runs past the end of the archive`);
    }
    const name = decoder.decode(archive.subarray(nameStart, nameStart + nameSize - 1));
    if (name === TRAILER) return entries;
    const data = new Uint8Array(archive.subarray(dataStart, dataEnd));
    const type = typeOf(mode);
    if (type === undefined) {
      throw new GuestImageError(
        'CORRUPT_IMAGE',
        `cpio entry ${name} has file type ${(mode & S_IFMT).toString(8)}`,
      );
    }
    entries.push({
      type,
      path: name,
      mode: mode & 0o7777,
      uid: field(2),
      gid: field(3),
      mtime: field(5),
      size,
      ...(type === 'char' || type === 'block' ? { major: field(9), minor: field(10) } : {}),
      ...(type === 'symlink' ? { target: decoder.decode(data) } : {}),
      ...(type === 'file' ? { data } : {}),
    });
    at = align4(dataEnd);
  }
}

function typeOf(mode: number): CpioEntry['type'] | undefined {
  const bits = mode & S_IFMT;
  for (const [type, value] of Object.entries(TYPE_BITS)) if (value === bits) return type as CpioEntry['type'];
  return undefined;
}

/** Archive paths are relative (`bin/busybox`), normalised, without `.`/`..` parts: the kernel takes them as given. */
function checkPath(path: string): string {
  const parts = path.split('/');
  if (
    path.length === 0 ||
    path.length > 4095 ||
    path.includes('\0') ||
    parts.some((part) => part === '' || part === '.' || part === '..') ||
    path === TRAILER
  ) {
    throw invalidArgument('path', `${JSON.stringify(path)} is not a relative, normalised archive path`);
  }
  return path;
}

function checkTarget(target: string): string {
  if (target.length === 0 || target.length > 4095 || target.includes('\0')) {
    throw invalidArgument('target', `${JSON.stringify(target)} is not a symbolic link target`);
  }
  return target;
}

function checkField(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > MAX_FIELD) {
    throw invalidArgument(name, `${value} does not fit a newc header field`);
  }
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
