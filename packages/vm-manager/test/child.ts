import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Runs a TypeScript fixture in a separate Node process, resolving workspace packages to their sources. */
export function runTsChild(fixture: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const file = fileURLToPath(new URL(`./fixtures/${fixture}`, import.meta.url));
  return run(process.execPath, ['--conditions=@my-hypervisor/source', '--import', 'tsx', file, ...args], {
    env: { ...process.env, ...env },
    maxBuffer: 16 * 1024 * 1024,
  });
}
