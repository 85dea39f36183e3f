import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { percentile, summarize } from './measure.js';
import { renderTable, writeBenchSection } from './report.js';

describe('writeBenchSection', () => {
  it('creates the file, then replaces only its own section', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'bench-')), 'benchmarks.md');
    await writeBenchSection('a', { title: 'A', command: 'pnpm bench', body: 'first' }, file);
    await writeBenchSection('b', { title: 'B', command: 'pnpm bench', body: 'other' }, file);
    await writeBenchSection('a', { title: 'A', command: 'pnpm bench', body: 'second' }, file);
    const text = await readFile(file, 'utf8');
    expect(text).toContain('second');
    expect(text).not.toContain('first');
    expect(text).toContain('other');
    expect(text.indexOf('## A')).toBeLessThan(text.indexOf('## B'));
    expect(text.match(/bench:a:start/g)).toHaveLength(1);
  });

  it('keeps hand-written text outside the markers', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'bench-')), 'benchmarks.md');
    await writeFile(file, '# Title\n\nnotes\n');
    await writeBenchSection('x', { title: 'X', command: 'c', body: 'b' }, file);
    expect(await readFile(file, 'utf8')).toMatch(/^# Title\n\nnotes\n\n<!-- bench:x:start -->/);
  });

  it('rejects an id that could break the markers', async () => {
    await expect(
      writeBenchSection('a -->', { title: '', command: '', body: '' }, '/nonexistent'),
    ).rejects.toThrow(TypeError);
  });
});

describe('measure helpers', () => {
  it('computes nearest-rank percentiles', () => {
    expect(percentile([5, 1, 4, 2, 3], 50)).toBe(3);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95)).toBe(10);
    expect(summarize([3, 1, 2])).toMatchObject({ median: 2, min: 1 });
    expect(() => percentile([], 50)).toThrow(RangeError);
  });

  it('renders a markdown table', () => {
    expect(renderTable(['a', 'b'], [[1, 'x']])).toBe('| a | b |\n| --- | --- |\n| 1 | x |');
  });
});
