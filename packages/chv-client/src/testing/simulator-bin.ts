#!/usr/bin/env node
import { runSimulatorCli } from './simulator-cli.js';

// SIGTERM and SIGINT end the simulated VMM cleanly (socket removed, events flushed), as they end the real one.
const controller = new AbortController();
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => controller.abort());
const code = await runSimulatorCli(process.argv.slice(2), { signal: controller.signal });
process.exit(code);
