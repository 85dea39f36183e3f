export { run } from './run.js';
export { VERSION } from './version.js';
