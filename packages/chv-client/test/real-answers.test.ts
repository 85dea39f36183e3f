import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startSimulator } from '../src/testing/index.js';
import { tempDir } from './helpers.js';
import {
  type Answer,
  eventLines,
  loadFixture,
  matches,
  runSteps,
  writeExchangeFiles,
} from './real-answers/matrix.js';

/**
 * Known differences between the simulator (v53 mode) and the real v53.0.0 answers, each with its reason.
 * Keyed `exchange name #step` (1-based) or `exchange name #events`. Kept in step with packages/chv-client
 * README "Simulator fidelity".
 */
const knownDifferences: Readonly<Record<string, string>> = {
  'invalid body: wrong JSON type #1':
    "the simulator checks bodies against the API description, not serde: its detail text differs (compared by shape, so this only shows when a recording pins serde's text)",
};

const fixture = await loadFixture();

describe('simulator v53 held to real v53.0.0 answers', () => {
  it('answers like the real VMM for at least 95% of the recorded steps', async () => {
    let total = 0;
    let identical = 0;
    const unexpected: string[] = [];
    const known: string[] = [];
    for (const exchange of fixture.exchanges) {
      await using dir = await tempDir();
      const kernel = join(dir.path, 'vmlinux');
      await writeFile(kernel, 'not a kernel: the simulator only checks that the file exists');
      await writeExchangeFiles(exchange, dir.path);
      const eventFile = join(dir.path, 'events.json');
      const socketPath = join(dir.path, 'api.sock');
      // strictTaps off: the recorder runs the VMM with CAP_NET_ADMIN, which creates a missing named TAP.
      const sim = await startSimulator({
        socketPath,
        version: 'v53',
        strictTaps: false,
        eventMonitor: eventFile,
      });
      let answers: Answer[];
      try {
        answers = await runSteps(exchange, { socketPath, dir: dir.path, kernel });
      } finally {
        await sim.close();
      }
      const compare = (key: string, expected: unknown, actual: unknown) => {
        total++;
        if (matches(expected, actual)) {
          identical++;
          return;
        }
        const line = `${key}: expected ${JSON.stringify(expected)}, simulator ${JSON.stringify(actual)}`;
        if (knownDifferences[key]) known.push(`${line} — known: ${knownDifferences[key]}`);
        else unexpected.push(line);
      };
      exchange.steps.forEach((step, i) => {
        compare(`${exchange.name} #${i + 1}`, step.answer, answers[i]);
      });
      if (exchange.events) {
        compare(`${exchange.name} #events`, exchange.events, eventLines(await readFile(eventFile, 'utf8')));
      }
    }
    const percent = (identical / total) * 100;
    console.info(
      `simulator v53 vs real v53.0.0: ${identical}/${total} steps identical (${percent.toFixed(1)}%)` +
        (known.length ? `\nknown differences seen:\n  ${known.join('\n  ')}` : '') +
        `\nallow-list:\n  ${Object.entries(knownDifferences)
          .map(([key, why]) => `${key}: ${why}`)
          .join('\n  ')}`,
    );
    expect(unexpected, 'differences not in the allow-list').toEqual([]);
    expect(percent).toBeGreaterThanOrEqual(95);
  });

  it('every exchange says where its answers come from', () => {
    for (const exchange of fixture.exchanges) {
      expect(['observed', 'upstream-source', 'recorded'], exchange.name).toContain(exchange.source);
      expect(exchange.note.length, exchange.name).toBeGreaterThan(20);
    }
  });

  it('the comparison can fail: a changed status or message is a difference', () => {
    const step = fixture.exchanges.flatMap((e) => e.steps).find((s) => s.answer.status === 404)!;
    expect(matches(step.answer, step.answer)).toBe(true);
    expect(matches(step.answer, { ...step.answer, status: 500 })).toBe(false);
    expect(matches(step.answer, { ...step.answer, body: ['Error from API'] })).toBe(false);
    expect(matches({ mac: '<mac>' }, { mac: 'not a mac' })).toBe(false);
  });
});
