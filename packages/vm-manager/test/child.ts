import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';

const run = promisify(execFile);
const bundles = new Map<string, Promise<string>>();

/**
 * A TypeScript fixture as one plain JavaScript file, built once per test run with workspace packages resolved to
 * their sources: fifty children starting through a TypeScript loader would measure the loader, not our code.
 */
export function bundledFixture(fixture: string): Promise<string> {
  let bundle = bundles.get(fixture);
  if (!bundle) {
    bundle = (async () => {
      const outfile = join(await mkdtemp(join(tmpdir(), 'myhv-child-')), fixture.replace(/\.ts$/, '.mjs'));
      await build({
        entryPoints: [fileURLToPath(new URL(`./fixtures/${fixture}`, import.meta.url))],
        outfile,
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        conditions: ['@my-hypervisor/source'],
        banner: {
          js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
        },
        logLevel: 'error',
      });
      return outfile;
    })();
    bundles.set(fixture, bundle);
  }
  return bundle;
}

/** Runs a fixture in a separate Node process; rejects when it exits non-zero. */
export async function runTsChild(fixture: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return run(process.execPath, [await bundledFixture(fixture), ...args], {
    env: { ...process.env, ...env },
    maxBuffer: 16 * 1024 * 1024,
  });
}
