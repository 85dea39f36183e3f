export { VERSION } from '../version.js';
export type { MosnetServerOps } from './handlers.js';
export { createMosnetServer, type MosnetServer, type MosnetServerOptions } from './mosnet-server.js';
