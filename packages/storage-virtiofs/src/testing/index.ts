export {
  createMemoryStorage,
  MEMORY_BACKEND,
  type MemoryStorage,
  type MemoryStorageOptions,
} from '../memory-storage.js';
export { VERSION } from '../version.js';
export { runStorageConformance, type StorageConformanceOptions } from './conformance.js';
