export { StateStore, type StateStoreOptions } from '../state-store.js';
export { VERSION } from '../version.js';
