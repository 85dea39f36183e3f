import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GuestImageError } from './errors.js';
import { runTool } from './run-tool.js';

/**
 * The modules a guest needs from a Debian kernel, where virtio-pci, virtio-net and virtio-fs are modules (`fuse`
 * and `virtiofs` for shares, `virtio_blk` for disks); their dependencies come along.
 */
export const GUEST_MODULES: readonly string[] = [
  'virtio_ring',
  'virtio',
  'virtio_pci_modern_dev',
  'virtio_pci_legacy_dev',
  'virtio_pci',
  'failover',
  'net_failover',
  'virtio_net',
  'fuse',
  'virtiofs',
  'virtio_blk',
];

/** A module to load, with its path under `lib/modules/<release>/` as the kernel package ships it. */
export interface KernelModule {
  readonly name: string;
  readonly path: string;
}

/** What a module needs loaded first (direct or transitive names), and where it lives. */
export interface ModuleInfo {
  readonly path: string;
  readonly deps: readonly string[];
}

export type ModuleLookup = (name: string) => ModuleInfo | undefined | Promise<ModuleInfo | undefined>;

/** `kernel/fs/fuse/virtiofs.ko.xz` → `virtiofs`; dashes and underscores are the same to the kernel. */
export function moduleName(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, '').replaceAll('-', '_');
}

/** Parses `modules.dep` (`path: dep-path dep-path …`, one module a line) into a lookup by module name. */
export function parseModulesDep(text: string): Map<string, ModuleInfo> {
  const modules = new Map<string, ModuleInfo>();
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) {
      throw new GuestImageError('CORRUPT_IMAGE', `modules.dep line ${index + 1} has no "path:" (${line})`);
    }
    const path = line.slice(0, colon).trim();
    const deps = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(moduleName);
    modules.set(moduleName(path), { path, deps });
  }
  return modules;
}

export interface LoadOrderOptions {
  /** Modules built into the kernel: wanted or needed, they are skipped rather than missing. */
  readonly builtin?: ReadonlySet<string>;
}

/**
 * The order to `insmod` the `wanted` modules: each after everything it depends on, each once, wanted ones in
 * the order given where their dependencies allow. A module nobody ships is MODULE_NOT_FOUND, naming who needed it.
 */
export async function moduleLoadOrder(
  wanted: readonly string[],
  lookup: ModuleLookup,
  options: LoadOrderOptions = {},
): Promise<KernelModule[]> {
  const order: KernelModule[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();
  const builtin = new Set([...(options.builtin ?? [])].map(moduleName));
  const visit = async (rawName: string, neededBy: string | undefined): Promise<void> => {
    const name = moduleName(rawName);
    if (done.has(name) || builtin.has(name)) return;
    if (visiting.has(name)) {
      throw new GuestImageError(
        'CORRUPT_IMAGE',
        `module ${name} depends on itself through ${[...visiting].join(' → ')}`,
      );
    }
    const info = await lookup(name);
    if (info === undefined) {
      const why = neededBy === undefined ? '' : ` (needed by ${neededBy})`;
      throw new GuestImageError('MODULE_NOT_FOUND', `the kernel package has no module ${name}${why}`, {
        details: { module: name, ...(neededBy === undefined ? {} : { neededBy }) },
      });
    }
    visiting.add(name);
    // modules.dep lists the deepest dependency last (modprobe loads from the end), so walk it backwards.
    for (const dep of [...info.deps].reverse()) await visit(dep, name);
    visiting.delete(name);
    done.add(name);
    order.push({ name, path: info.path });
  };
  for (const name of wanted) await visit(name, undefined);
  return order;
}

/**
 * A lookup over an unpacked `lib/modules/<release>` directory: its `modules.dep` when present, else (a kernel
 * package as shipped: depmod runs only on install) `modules.order` for the paths and each module's own
 * `.modinfo` `depends=` for what it needs.
 */
export async function moduleLookupFor(
  moduleDir: string,
  options: { signal?: AbortSignal | undefined } = {},
): Promise<{ lookup: ModuleLookup; builtin: Set<string> }> {
  const builtin = new Set(
    (await readOptional(join(moduleDir, 'modules.builtin'))).split('\n').filter(Boolean).map(moduleName),
  );
  const depText = await readOptional(join(moduleDir, 'modules.dep'));
  if (depText !== '') {
    const deps = parseModulesDep(depText);
    return { lookup: (name) => deps.get(name), builtin };
  }
  const orderText = await readOptional(join(moduleDir, 'modules.order'));
  if (orderText === '') {
    throw new GuestImageError('BAD_PACKAGE', `${moduleDir} has neither modules.dep nor modules.order`);
  }
  const paths = new Map<string, string>();
  for (const line of orderText.split('\n')) {
    const path = line.trim();
    if (path !== '') paths.set(moduleName(path), path);
  }
  const lookup: ModuleLookup = async (name) => {
    const path = paths.get(name);
    if (path === undefined) return undefined;
    const elf = await readModuleFile(join(moduleDir, path), options);
    return { path, deps: modinfoDepends(elf, path) };
  };
  return { lookup, builtin };
}

/** A module's ELF bytes, decompressed when the package ships it as `.ko.xz`/`.ko.zst` (busybox insmod cannot). */
export async function readModuleFile(
  path: string,
  options: { signal?: AbortSignal | undefined } = {},
): Promise<Uint8Array> {
  const bytes = new Uint8Array(await readFile(path));
  const tool = path.endsWith('.ko.xz')
    ? 'xz'
    : path.endsWith('.ko.zst')
      ? 'zstd'
      : path.endsWith('.ko.gz')
        ? 'gzip'
        : undefined;
  if (tool === undefined) return bytes;
  return runTool(tool, ['--decompress', '--stdout'], {
    input: bytes,
    signal: options.signal,
    failCode: 'DECOMPRESS_FAILED',
    doing: `decompressing module ${path}`,
  });
}

/** The `depends=` list in a module's `.modinfo` section (ELF64 little-endian, as x86-64 modules are). */
export function modinfoDepends(elf: Uint8Array, what = 'module'): string[] {
  const bad = (why: string) => new GuestImageError('BAD_PACKAGE', `${what} is not a kernel module: ${why}`);
  if (elf.length < 64 || elf[0] !== 0x7f || elf[1] !== 0x45 || elf[2] !== 0x4c || elf[3] !== 0x46) {
    throw bad('no ELF header');
  }
  if (elf[4] !== 2 || elf[5] !== 1) throw bad('not a 64-bit little-endian ELF');
  const v = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const shoff = Number(v.getBigUint64(0x28, true));
  const shentsize = v.getUint16(0x3a, true);
  const shnum = v.getUint16(0x3c, true);
  const shstrndx = v.getUint16(0x3e, true);
  if (shentsize < 64 || shstrndx >= shnum || shoff + shnum * shentsize > elf.length) {
    throw bad('its section headers are missing or truncated');
  }
  const section = (i: number) => {
    const at = shoff + i * shentsize;
    const offset = Number(v.getBigUint64(at + 24, true));
    const size = Number(v.getBigUint64(at + 32, true));
    if (offset + size > elf.length) throw bad(`section ${i} runs past the end of the file`);
    return { nameAt: v.getUint32(at, true), bytes: elf.subarray(offset, offset + size) };
  };
  const names = section(shstrndx).bytes;
  const decoder = new TextDecoder();
  for (let i = 0; i < shnum; i++) {
    const { nameAt, bytes } = section(i);
    const end = names.indexOf(0, nameAt);
    if (decoder.decode(names.subarray(nameAt, end < 0 ? names.length : end)) !== '.modinfo') continue;
    for (const entry of decoder.decode(bytes).split('\0')) {
      if (!entry.startsWith('depends=')) continue;
      return entry.slice('depends='.length).split(',').filter(Boolean).map(moduleName);
    }
    return [];
  }
  throw bad('it has no .modinfo section');
}

async function readOptional(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw error;
  }
}
