export { VERSION } from '../version.js';
export { runStorageConformance, type StorageConformanceOptions } from './conformance.js';
