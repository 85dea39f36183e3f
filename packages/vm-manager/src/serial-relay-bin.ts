import { runSerialRelayCli } from './serial-console.js';

// The detached per-VM serial relay, spawned by the manager with `process.execPath` (see serial-console.ts).
process.exitCode = await runSerialRelayCli(process.argv.slice(2));
