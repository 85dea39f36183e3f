#!/usr/bin/env node
// Sums the vitest JSON reports in a directory and prints "N passed, N failed, N skipped" (after "<label>: " when a
// label is given, e.g. for the Node 24 leg), after one "sum-test-reports: FAILED <package> <file> > <test>: <why>"
// line per failed test.
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
const failures = [];
const firstLine = (text) => (text ?? 'no message').trim().split('\n')[0].slice(0, 300);
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
  for (const s of r.testResults ?? []) {
    const where = `${name} ${s.name.slice(s.name.indexOf(`/${name}/`) + name.length + 2)}`;
    // A test file that fails to import has no tests but counts as a failed suite.
    if (s.status === 'failed' && s.assertionResults.length === 0) {
      suiteFailures++;
      failures.push(`${where}: ${firstLine(s.message)}`);
    }
    for (const a of s.assertionResults)
      if (a.status === 'failed')
        failures.push(`${where} > ${a.fullName}: ${firstLine(a.failureMessages?.[0])}`);
  }
}
// Named here because CI shows only the tail of its log: a red run must say which tests failed and why.
for (const f of failures) console.log(`sum-test-reports: FAILED ${f}`);
failed += suiteFailures;
console.log(`${label ? `${label}: ` : ''}${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
