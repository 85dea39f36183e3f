import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { brokenBackends } from './fixtures/broken-backends.js';

interface JsonReport {
  testResults: {
    assertionResults: { ancestorTitles: string[]; title: string; status: string }[];
  }[];
}

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const vitestBin = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');

/** Runs the kit against every broken backend in a child vitest and returns the failed tests per backend. */
async function runBrokenKits(outputFile: string): Promise<Map<string, { failed: string[]; passed: number }>> {
  const env = { ...process.env };
  // The CI report directory must only receive the real run's report.
  delete env.MYHV_TEST_REPORT_DIR;
  const args = [
    vitestBin,
    'run',
    '--config',
    'test/fixtures/vitest.config.ts',
    '--reporter=json',
    `--outputFile=${outputFile}`,
  ];
  const exitCode = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: packageDir, env, stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', resolve);
  });
  // Failing tests are the point: vitest exits 1 for them.
  expect(exitCode).toBe(1);
  const report = JSON.parse(await readFile(outputFile, 'utf8')) as JsonReport;
  const results = new Map<string, { failed: string[]; passed: number }>();
  for (const file of report.testResults) {
    for (const test of file.assertionResults) {
      const [backend, ...path] = test.ancestorTitles;
      if (backend === undefined) continue;
      const entry = results.get(backend) ?? { failed: [], passed: 0 };
      if (test.status === 'failed') entry.failed.push([...path, test.title].join(' > '));
      if (test.status === 'passed') entry.passed++;
      results.set(backend, entry);
    }
  }
  return results;
}

describe('the conformance kit can fail', () => {
  let dir: string;
  let results: Map<string, { failed: string[]; passed: number }>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'myhv-net-ops-kit-'));
    results = await runBrokenKits(join(dir, 'report.json'));
  }, 120_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const [name, backend] of Object.entries(brokenBackends)) {
    it(`${name}: exactly the kit tests that check it fail`, () => {
      const result = results.get(name);
      expect(result, `no results for ${name}`).toBeDefined();
      expect([...result!.failed].sort()).toEqual([...backend.expectedFailures].sort());
      // The rest of the kit still ran and passed, so the failures are the defect's, not the harness's.
      expect(result!.passed).toBeGreaterThan(30);
    });
  }
});
