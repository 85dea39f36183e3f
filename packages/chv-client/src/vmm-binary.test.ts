import { existsSync, realpathSync } from 'node:fs';
import { chmod, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChvApiError } from './errors.js';
import { realVmmBinary, realVmmMissingReason } from './testing/real-vmm.js';
import { simulatorCommand } from './testing/simulator-command.js';
import { checkVmmBinary } from './vmm-binary.js';

/** MYHV_CLOUD_HYPERVISOR's binary (.ci/run sets it to the v53.0.0 beside the checkout). */
const REAL_VMM = realVmmBinary() ?? '';
/** The binary this repository was checked against: its version is known. */
const SHARED_VMM = fileURLToPath(
  new URL('../../../../shared/cloud-hypervisor/bin/cloud-hypervisor', import.meta.url),
);
const realMissing = realVmmMissingReason();
if (realMissing)
  console.warn(`skipped: checkVmmBinary against the real cloud-hypervisor, because ${realMissing}`);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'myhv-vmm-binary-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function script(name: string, body: string, mode = 0o755): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, mode);
  return path;
}

async function refusal(promise: Promise<unknown>): Promise<ChvApiError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(ChvApiError.isInstance(error), String(error)).toBe(true);
  return error as ChvApiError;
}

describe('checkVmmBinary', () => {
  it.skipIf(realMissing !== undefined)(
    'accepts the real cloud-hypervisor and reads its version',
    async () => {
      const info = await checkVmmBinary(REAL_VMM);
      expect(info).toMatchObject({ kind: 'cloud-hypervisor', path: REAL_VMM });
      expect(info.version).toBe(
        existsSync(SHARED_VMM) && realpathSync(REAL_VMM) === realpathSync(SHARED_VMM)
          ? '53.0.0'
          : info.version.match(/^\d+\.\d+\.\d+/)?.[0],
      );
    },
  );

  it('accepts the simulator as the simulator', async () => {
    const sim = simulatorCommand();
    const info = await checkVmmBinary(sim.command, { args: sim.args, timeoutMs: 20_000 });
    expect(info).toMatchObject({ kind: 'simulator', version: '53.0', path: process.execPath });
  });

  it.each([
    [
      'a file that is not executable',
      () => script('plain', 'echo cloud-hypervisor v53.0.0', 0o644),
      /is not executable \(mode 644\)/,
    ],
    // GNU echo and true answer --version with their own name; other builds print "--version" or nothing.
    ['/bin/echo', async () => '/bin/echo', /\/bin\/echo is not cloud-hypervisor: `--version` printed "/],
    ['/bin/true', async () => '/bin/true', /\/bin\/true is not cloud-hypervisor: `--version` printed/],
    ['a script that prints nothing', () => script('silent', 'exit 0'), /`--version` printed nothing \(/],
    [
      'a script that prints something else',
      () => script('other', 'echo "qemu-system-x86_64 8.2.0"'),
      /is not cloud-hypervisor: `--version` printed "qemu-system-x86_64 8\.2\.0"/,
    ],
    [
      'a script that prints the right words and fails',
      () => script('failing', 'echo "cloud-hypervisor v53.0.0"; exit 3'),
      /and exited with code 3/,
    ],
    ['a directory', async () => dir, /is not a file/],
    ['a missing path', async () => join(dir, 'missing'), /does not exist/],
  ])('refuses %s with INVALID_ARGUMENT naming the field', async (_title, make, message) => {
    const error = await refusal(checkVmmBinary(await make(), { field: 'vmm.binary' }));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.details.field).toBe('vmm.binary');
    expect(error.message).toMatch(/^vmm\.binary: /);
    expect(error.message).toMatch(message);
  });

  it('reports TIMEOUT (not bad input) for a binary that does not answer in time, and kills it', async () => {
    const path = await script('hangs', 'exec sleep 30');
    const started = performance.now();
    const error = await refusal(checkVmmBinary(path, { timeoutMs: 300 }));
    expect(error.code).toBe('TIMEOUT');
    expect(error.message).toMatch(/did not answer --version within 300 ms/);
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('finds a bare name on PATH, and names it when it is not there', async () => {
    await script('cloud-hypervisor', 'echo "cloud-hypervisor v99.1.2"');
    expect(await checkVmmBinary('cloud-hypervisor', { env: { PATH: dir } })).toEqual({
      kind: 'cloud-hypervisor',
      version: '99.1.2',
      path: join(dir, 'cloud-hypervisor'),
    });
    const error = await refusal(checkVmmBinary('cloud-hypervisor', { env: { PATH: '/nonexistent' } }));
    expect(error.message).toBe('command: cloud-hypervisor was not found on PATH');
  });

  it('asks once per unchanged file, and again when the file changes', async () => {
    const counter = join(dir, 'runs');
    const path = await script('counted', `echo x >> ${counter}; echo "cloud-hypervisor v50.0.0"`);
    const runs = async () =>
      (await import('node:fs/promises')).readFile(counter, 'utf8').then((t) => t.length / 2);
    await Promise.all([checkVmmBinary(path), checkVmmBinary(path), checkVmmBinary(path)]);
    await checkVmmBinary(path);
    expect(await runs()).toBe(1);
    await writeFile(path, `#!/bin/sh\necho x >> ${counter}; echo "cloud-hypervisor v51.0.0"\n`);
    await utimes(path, new Date(), new Date(Date.now() + 5_000));
    expect((await checkVmmBinary(path)).version).toBe('51.0.0');
    expect(await runs()).toBe(2);
  });

  it('an aborted check rejects with ABORTED', async () => {
    const error = await refusal(checkVmmBinary('/bin/true', { signal: AbortSignal.abort() }));
    expect(error.code).toBe('ABORTED');
  });
});
