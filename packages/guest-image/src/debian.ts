import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { GuestImageError, invalidArgument, throwIfAborted } from './errors.js';
import { runTool } from './run-tool.js';

/** A `.deb` in the cache, with the fields apt and `dpkg-deb` agree on. */
export interface DebianPackage {
  readonly path: string;
  readonly package: string;
  readonly version: string;
  readonly arch: string;
  readonly sha256: string;
}

/** Where `.deb` files are kept, and the signal. */
export interface FetchDebianPackageOptions {
  /** Where `.deb` files are kept between builds; created (mode 0755, so apt's `_apt` user can read it). */
  readonly cacheDir: string;
  readonly signal?: AbortSignal | undefined;
}

/** The fields of one package record, as `apt-cache show` prints them. */
export type AptRecord = Readonly<Record<string, string>>;

const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+$/;
const VERSION = /^[A-Za-z0-9.+~:-]+$/;
/** A versioned kernel image package (`linux-image-6.1.0-57-amd64`), not a metapackage (`linux-image-amd64`). */
const VERSIONED_KERNEL = /^linux-image-\d[^\s,()|]*$/;

/** Parses the first record of `apt-cache show` output (`Field: value`, continuation lines start with a space). */
export function parseAptRecord(text: string): AptRecord {
  const record: Record<string, string> = {};
  let last: string | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (last !== undefined) break;
      continue;
    }
    if (/^\s/.test(line) && last !== undefined) {
      record[last] += `\n${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    last = line.slice(0, colon);
    record[last] = line.slice(colon + 1).trim();
  }
  return record;
}

/**
 * The versioned kernel package a record stands for: itself when versioned, else the `linux-image-<release>` its
 * Depends names (how Debian's `linux-image-amd64` metapackage points at the current kernel).
 */
export function kernelPackageOf(record: AptRecord): string {
  const name = record.Package ?? '';
  if (VERSIONED_KERNEL.test(name)) return name;
  for (const alternative of (record.Depends ?? '').split(/[,|]/)) {
    const dep = alternative.trim().split(/[\s(]/)[0] ?? '';
    if (VERSIONED_KERNEL.test(dep)) return dep;
  }
  throw new GuestImageError(
    'BAD_PACKAGE',
    `${name || 'the package'} is not a kernel image package and depends on none (Depends: ${record.Depends ?? 'none'})`,
    { details: { package: name } },
  );
}

/** The candidate record apt would install for `name`. */
export async function aptShow(
  name: string,
  options: { signal?: AbortSignal | undefined } = {},
): Promise<AptRecord> {
  checkPackageName(name);
  const out = await runTool('apt-cache', ['show', '--no-all-versions', name], {
    signal: options.signal,
    failCode: 'FETCH_FAILED',
    doing: `looking up ${name} with apt (is it in the sources? run apt-get update)`,
  });
  const record = parseAptRecord(new TextDecoder().decode(out));
  if (record.Package === undefined || record.Version === undefined) {
    throw new GuestImageError(
      'FETCH_FAILED',
      `apt knows no installable package ${name} (run apt-get update?)`,
      {
        details: { package: name },
      },
    );
  }
  return record;
}

/**
 * Downloads `name` (apt's candidate version) into `cacheDir` with `apt-get download` (no install, no root-wide
 * change), unless the cache already holds that version with the sha256 apt expects: a warm build needs no network.
 */
export async function fetchDebianPackage(
  name: string,
  options: FetchDebianPackageOptions,
): Promise<DebianPackage> {
  throwIfAborted(options.signal);
  const record = await aptShow(name, options);
  const version = record.Version ?? '';
  const arch = record.Architecture ?? '';
  const expected = record.SHA256;
  if (!VERSION.test(version) || !/^[a-z0-9-]+$/.test(arch)) {
    throw new GuestImageError('BAD_PACKAGE', `apt reports an odd version or architecture for ${name}`);
  }
  // Only a directory made here gets its mode set (past the umask); an existing one is the caller's.
  if ((await mkdir(options.cacheDir, { recursive: true, mode: 0o755 })) !== undefined) {
    await chmod(options.cacheDir, 0o755);
  }
  // apt-get download names the file like this (the epoch's ':' escaped as %3a).
  const path = join(options.cacheDir, `${name}_${version.replaceAll(':', '%3a')}_${arch}.deb`);
  let sha256 = await sha256OfFile(path);
  if (sha256 === undefined || (expected !== undefined && sha256 !== expected)) {
    await runTool('apt-get', ['download', '-q', `${name}=${version}`], {
      cwd: options.cacheDir,
      signal: options.signal,
      failCode: 'FETCH_FAILED',
      doing: `downloading ${name} ${version} with apt-get`,
    });
    sha256 = await sha256OfFile(path);
    if (sha256 === undefined) {
      throw new GuestImageError('FETCH_FAILED', `apt-get download did not leave ${path}`, {
        details: { package: name },
      });
    }
    if (expected !== undefined && sha256 !== expected) {
      throw new GuestImageError('FETCH_FAILED', `${path} has sha256 ${sha256}, apt expects ${expected}`, {
        details: { package: name },
      });
    }
  }
  const fields = await debFields(path, options);
  if (fields.Package !== name || fields.Version !== version || fields.Architecture !== arch) {
    throw new GuestImageError(
      'BAD_PACKAGE',
      `${path} is ${fields.Package} ${fields.Version}, not ${name} ${version}`,
    );
  }
  return { path, package: name, version, arch, sha256 };
}

/** Fetches a kernel package, following a metapackage such as `linux-image-amd64` to the versioned one. */
export async function fetchKernelPackage(
  name: string,
  options: FetchDebianPackageOptions,
): Promise<DebianPackage> {
  const record = await aptShow(name, options);
  return fetchDebianPackage(kernelPackageOf(record), options);
}

/** The control fields of a `.deb` (`dpkg-deb -f`). */
export async function debFields(
  path: string,
  options: { signal?: AbortSignal | undefined } = {},
): Promise<AptRecord> {
  const out = await runTool('dpkg-deb', ['--field', path], {
    signal: options.signal,
    failCode: 'BAD_PACKAGE',
    doing: `reading the control fields of ${path}`,
  });
  return parseAptRecord(new TextDecoder().decode(out));
}

/** Unpacks the files of a `.deb` into `dir` (`dpkg-deb -x`; maintainer scripts are not run). */
export async function extractDeb(
  path: string,
  dir: string,
  options: { signal?: AbortSignal | undefined } = {},
): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await runTool('dpkg-deb', ['--extract', path, dir], {
    signal: options.signal,
    failCode: 'BAD_PACKAGE',
    doing: `unpacking ${path}`,
  });
}

/** The sha256 of a file in hex, or undefined when there is no such file. */
export async function sha256OfFile(path: string): Promise<string | undefined> {
  try {
    if (!(await stat(path)).isFile()) return undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function checkPackageName(name: string): void {
  if (!PACKAGE_NAME.test(name) || name.length > 128) {
    throw invalidArgument('package', `${JSON.stringify(name)} is not a Debian package name`);
  }
}
