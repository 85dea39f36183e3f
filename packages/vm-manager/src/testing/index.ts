export { StateStore, type StateStoreOptions } from '../state-store.js';
export { VERSION } from '../version.js';
export { fileModes, modeViolations } from './file-modes.js';
