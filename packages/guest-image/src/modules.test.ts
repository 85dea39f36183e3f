import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GuestImageError } from './errors.js';
import {
  GUEST_MODULES,
  type ModuleInfo,
  modinfoDepends,
  moduleLoadOrder,
  moduleLookupFor,
  moduleName,
  parseModulesDep,
} from './modules.js';

// As depmod writes it: every dependency, transitively, the deepest last.
const MODULES_DEP = `kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/fuse/fuse.ko.xz:
kernel/fs/fuse/virtiofs.ko.xz: kernel/fs/fuse/fuse.ko.xz kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
`;

function lookupOf(deps: Map<string, ModuleInfo>) {
  return (name: string) => deps.get(name);
}

/** Every module after all it depends on, none twice. */
function expectValidOrder(order: readonly { name: string }[], deps: Map<string, ModuleInfo>) {
  const names = order.map((m) => m.name);
  expect(new Set(names).size).toBe(names.length);
  for (const [i, name] of names.entries()) {
    for (const dep of deps.get(name)?.deps ?? [])
      expect(names.indexOf(dep), `${dep} before ${name}`).toBeLessThan(i);
  }
}

describe('module load order', () => {
  it('puts dependencies first, each once, for the guest modules', async () => {
    const deps = parseModulesDep(MODULES_DEP);
    const order = await moduleLoadOrder(GUEST_MODULES, lookupOf(deps));
    expect(order.map((m) => m.name)).toEqual([...GUEST_MODULES]);
    expect(order.find((m) => m.name === 'virtiofs')?.path).toBe('kernel/fs/fuse/virtiofs.ko.xz');
    expectValidOrder(order, deps);
  });

  it('pulls in dependencies nobody asked for, in a valid order whatever the request order', async () => {
    const deps = parseModulesDep(MODULES_DEP);
    const order = await moduleLoadOrder(
      ['virtiofs', 'virtio_net', 'virtio-rng', 'virtio_net'],
      lookupOf(deps),
    );
    expect(order.map((m) => m.name)).toEqual([
      'virtio_ring',
      'virtio',
      'fuse',
      'virtiofs',
      'failover',
      'net_failover',
      'virtio_net',
      'virtio_rng',
    ]);
    expectValidOrder(order, deps);
  });

  it('skips modules built into the kernel', async () => {
    const order = await moduleLoadOrder(['virtio_net'], lookupOf(parseModulesDep(MODULES_DEP)), {
      builtin: new Set(['kernel/drivers/virtio/virtio_ring.ko', 'virtio']),
    });
    expect(order.map((m) => m.name)).toEqual(['failover', 'net_failover', 'virtio_net']);
  });

  it('names a missing module and who needed it (MODULE_NOT_FOUND)', async () => {
    const deps = parseModulesDep(MODULES_DEP.replace(/^kernel\/net\/core\/failover\.ko:\n/m, ''));
    const error = await moduleLoadOrder(['virtio_net'], lookupOf(deps)).catch((e: unknown) => e);
    expect(GuestImageError.isInstance(error) && error.code).toBe('MODULE_NOT_FOUND');
    expect(GuestImageError.isInstance(error) && error.details).toMatchObject({
      module: 'failover',
      neededBy: 'virtio_net',
    });
    const wanted = await moduleLoadOrder(['no_such_module'], lookupOf(deps)).catch((e: unknown) => e);
    expect(GuestImageError.isInstance(wanted) && wanted.code).toBe('MODULE_NOT_FOUND');
  });

  it('refuses a dependency cycle instead of looping', async () => {
    const deps = parseModulesDep('a.ko: b.ko\nb.ko: a.ko\n');
    const error = await moduleLoadOrder(['a'], lookupOf(deps)).catch((e: unknown) => e);
    expect(GuestImageError.isInstance(error) && error.code).toBe('CORRUPT_IMAGE');
  });

  it('refuses a modules.dep line without a colon', () => {
    expect(() => parseModulesDep('kernel/x.ko kernel/y.ko\n')).toThrow(
      expect.objectContaining({ code: 'CORRUPT_IMAGE' }),
    );
  });

  it('normalises module names from paths', () => {
    expect(moduleName('kernel/drivers/char/hw_random/virtio-rng.ko.zst')).toBe('virtio_rng');
    expect(moduleName('virtio_net')).toBe('virtio_net');
  });
});

/** A minimal relocatable ELF64 with a `.modinfo` section, as a kernel module has. */
function fakeModule(modinfo: string): Uint8Array {
  const enc = new TextEncoder();
  const info = enc.encode(modinfo);
  const shstr = enc.encode('\0.shstrtab\0.modinfo\0');
  const infoAt = 64;
  const shstrAt = infoAt + info.length;
  const shoff = (shstrAt + shstr.length + 7) & ~7;
  const bytes = new Uint8Array(shoff + 3 * 64);
  const v = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  v.setUint16(16, 1, true); // ET_REL
  v.setUint16(18, 62, true); // x86-64
  v.setBigUint64(0x28, BigInt(shoff), true);
  v.setUint16(0x3a, 64, true);
  v.setUint16(0x3c, 3, true);
  v.setUint16(0x3e, 1, true);
  const section = (i: number, name: number, offset: number, size: number) => {
    const at = shoff + i * 64;
    v.setUint32(at, name, true);
    v.setUint32(at + 4, i === 1 ? 3 : 1, true);
    v.setBigUint64(at + 24, BigInt(offset), true);
    v.setBigUint64(at + 32, BigInt(size), true);
  };
  section(1, 1, shstrAt, shstr.length);
  section(2, 11, infoAt, info.length);
  bytes.set(info, infoAt);
  bytes.set(shstr, shstrAt);
  return bytes;
}

describe('modules from a kernel package (no modules.dep: depmod runs only on install)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'myhv-modules-'));
    const files: Record<string, string> = {
      'kernel/drivers/virtio/virtio_ring.ko': 'license=GPL\0depends=\0name=virtio_ring\0',
      'kernel/drivers/virtio/virtio.ko': 'license=GPL\0depends=virtio_ring\0name=virtio\0',
      'kernel/net/core/failover.ko': 'depends=\0',
      'kernel/drivers/net/net_failover.ko': 'depends=failover\0',
      'kernel/drivers/net/virtio_net.ko': 'depends=net_failover,virtio,virtio_ring\0',
    };
    for (const [path, modinfo] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), fakeModule(modinfo));
    }
    await writeFile(join(dir, 'modules.order'), `${Object.keys(files).join('\n')}\n`);
    await writeFile(join(dir, 'modules.builtin'), 'kernel/fs/fuse/fuse.ko\n');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads depends= from each module and orders them', async () => {
    const { lookup, builtin } = await moduleLookupFor(dir);
    const order = await moduleLoadOrder(['virtio_net', 'fuse'], lookup, { builtin });
    expect(order.map((m) => m.name)).toEqual([
      'virtio_ring',
      'virtio',
      'failover',
      'net_failover',
      'virtio_net',
    ]);
  });

  it('parses .modinfo and refuses what is not a module (BAD_PACKAGE)', () => {
    expect(modinfoDepends(fakeModule('depends=a,b-c\0'))).toEqual(['a', 'b_c']);
    expect(modinfoDepends(fakeModule('license=GPL\0'))).toEqual([]);
    expect(() => modinfoDepends(new TextEncoder().encode('not an elf'.repeat(10)))).toThrow(
      expect.objectContaining({ code: 'BAD_PACKAGE' }),
    );
    expect(() => modinfoDepends(fakeModule('depends=\0').slice(0, 100))).toThrow(
      expect.objectContaining({ code: 'BAD_PACKAGE' }),
    );
  });
});
