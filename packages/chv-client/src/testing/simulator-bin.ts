#!/usr/bin/env node
import { runSimulatorCli } from './simulator-cli.js';

// SIGTERM and SIGINT end the simulated VMM cleanly (socket removed, events flushed), as they end the real one.
const controller = new AbortController();
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => controller.abort());
// No top-level await: the bin is bundled as CommonJS (see tsup.config.ts).
void runSimulatorCli(process.argv.slice(2), { signal: controller.signal }).then((code) => process.exit(code));
