export { type Lenient, lenient } from './lenient.js';
export * from './primitives.js';
export { type ChvSchemaName, chvSchemas } from './registry.js';
export * from './requests.js';
export * from './responses.js';
export * from './vm-config.js';
