import { createMemoryStorage } from '../memory-storage.js';
import { runStorageConformance } from './index.js';

runStorageConformance('createMemoryStorage()', { factory: () => createMemoryStorage() });
runStorageConformance('createMemoryStorage() with a start delay and no read-only', {
  factory: () => createMemoryStorage({ startDelayMs: 5, supportsReadOnly: false }),
});
