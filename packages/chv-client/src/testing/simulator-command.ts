import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The command line that runs the simulator binary in place of cloud-hypervisor. */
export interface SimulatorCommand {
  /** The executable: this Node binary. */
  readonly command: string;
  /** Arguments before cloud-hypervisor's own flags. */
  readonly args: readonly string[];
}

/**
 * How to spawn the simulator as a process, for `ChvProcess.spawn({ command, commandArgs })` or anything else
 * that runs the VMM binary: `node dist/simulator-bin.cjs` when built (always so when installed from npm), else
 * the TypeScript source through tsx (inside this repository, before a build).
 */
export function simulatorCommand(options: { from?: 'auto' | 'dist' | 'source' } = {}): SimulatorCommand {
  const from = options.from ?? 'auto';
  if (from !== 'source') {
    // Bundled into dist/testing.js the bin is a sibling; from src/testing/ it is under ../../dist.
    for (const candidate of ['./simulator-bin.cjs', '../../dist/simulator-bin.cjs']) {
      const file = fileURLToPath(new URL(candidate, import.meta.url));
      if (fs.existsSync(file)) return { command: process.execPath, args: [file] };
    }
    if (from === 'dist')
      throw new Error('simulatorCommand: dist/simulator-bin.cjs not found; run the build first');
  }
  const source = fileURLToPath(new URL('./simulator-bin.ts', import.meta.url));
  if (!fs.existsSync(source)) {
    throw new Error(
      'simulatorCommand: neither dist/simulator-bin.cjs nor src/testing/simulator-bin.ts exists',
    );
  }
  const tsx = createRequire(import.meta.url).resolve('tsx');
  return { command: process.execPath, args: ['--import', pathToFileURL(tsx).href, source] };
}
