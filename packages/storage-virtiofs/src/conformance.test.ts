import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runStorageConformance } from '@my-hypervisor/storage/testing';
import { afterAll, beforeAll } from 'vitest';
import { type FakeVirtiofsdOptions, writeFakeVirtiofsd } from './__fixtures__/fake-virtiofsd.js';
import { VirtioFsStorage } from './virtiofs-storage.js';

// The contract against VirtioFsStorage driving a fake daemon: runs without root, and covers the Rust argv and a
// read-only share, which test/integration (the real C build, attached and detached) cannot.
let base: string;
beforeAll(async () => {
  // Short and under /tmp: socket paths must fit in 107 bytes.
  base = await mkdtemp(join('/tmp', 'mhv-fc-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

const runDirs = new Map<VirtioFsStorage, string>();

function factory(fake: FakeVirtiofsdOptions, detached: boolean): () => Promise<VirtioFsStorage> {
  return async () => {
    const binary = await writeFakeVirtiofsd(base, fake);
    const runDir = await mkdtemp(join(base, 'r-'));
    const storage = new VirtioFsStorage({ runDir, binary, detached });
    runDirs.set(storage, runDir);
    return storage;
  };
}

async function cleanup(storage: VirtioFsStorage): Promise<void> {
  await storage.close();
  await rm(runDirs.get(storage)!, { recursive: true, force: true });
  runDirs.delete(storage);
}

runStorageConformance('VirtioFsStorage (fake Rust virtiofsd with --readonly, detached)', {
  factory: factory({ flavour: 'rust', behaviour: 'listen', readonly: true, name: 'fake-rust-ro' }, true),
  cleanup,
});
