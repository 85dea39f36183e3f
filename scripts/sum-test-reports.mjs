#!/usr/bin/env node
// Sums the vitest JSON reports in a directory and prints "N passed, N failed, N skipped" (after "<label>: " when a
// label is given, e.g. for the Node 24 leg).
// Exits 1 when any test failed, a test file failed to load, or an expected report is missing.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, label] = process.argv.slice(2);
if (!dir) {
  console.error('usage: sum-test-reports.mjs <report-dir> [label]');
  process.exit(2);
}
const root = new URL('..', import.meta.url).pathname;
const expected = ['packages', 'apps', 'tools'].flatMap((parent) =>
  readdirSync(join(root, parent), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name),
);
let passed = 0;
let failed = 0;
let skipped = 0;
let suiteFailures = 0;
const files = new Set(readdirSync(dir));
for (const name of expected) {
  const file = `${name}.json`;
  if (!files.has(file)) {
    console.error(`sum-test-reports: no report from ${name} (its test run crashed or did not start)`);
    suiteFailures++;
    continue;
  }
  const r = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  skipped += r.numPendingTests + r.numTodoTests;
  // A test file that fails to import has no tests but counts as a failed suite.
  for (const s of r.testResults ?? [])
    if (s.status === 'failed' && s.assertionResults.length === 0) suiteFailures++;
}
failed += suiteFailures;
console.log(`${label ? `${label}: ` : ''}${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
