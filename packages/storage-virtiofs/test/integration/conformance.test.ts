import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runStorageConformance } from '@my-hypervisor/storage/testing';
import { C_VIRTIOFSD_PATH, VirtioFsStorage } from '../../src/index.js';

const isRoot = process.getuid?.() === 0;
const reason = !existsSync(C_VIRTIOFSD_PATH)
  ? `${C_VIRTIOFSD_PATH} is missing (apt-get install --no-install-recommends qemu-system-common)`
  : !isRoot
    ? 'virtiofsd must run as root'
    : false;

const runDirs = new Map<VirtioFsStorage, string>();

async function factory(detached: boolean): Promise<VirtioFsStorage> {
  // Short and under /tmp: socket paths must fit in 107 bytes.
  const runDir = await mkdtemp(join('/tmp', `mhv-sc-${process.pid}-`));
  const storage = new VirtioFsStorage({ runDir, binary: C_VIRTIOFSD_PATH, detached });
  runDirs.set(storage, runDir);
  return storage;
}

async function cleanup(storage: VirtioFsStorage): Promise<void> {
  await storage.close();
  await rm(runDirs.get(storage)!, { recursive: true, force: true });
  runDirs.delete(storage);
}

runStorageConformance('VirtioFsStorage (C virtiofsd, attached)', {
  factory: () => factory(false),
  cleanup,
  skip: reason,
});
runStorageConformance('VirtioFsStorage (C virtiofsd, detached)', {
  factory: () => factory(true),
  cleanup,
  skip: reason,
});
