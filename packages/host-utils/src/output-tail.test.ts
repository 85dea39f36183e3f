import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OutputTail, readFileTail } from './output-tail.js';

const dir = await mkdtemp(join(tmpdir(), 'host-utils-tail-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('OutputTail', () => {
  it('keeps the last maxBytes of what was pushed', () => {
    const tail = new OutputTail(10);
    for (const chunk of ['0123456', '789ab', 'cdef']) tail.push(Buffer.from(chunk));
    expect(tail.text()).toBe('6789abcdef');
    expect(new OutputTail().text()).toBe('');
  });
});

describe('readFileTail', () => {
  it('reads the last maxBytes, optionally from a line start', async () => {
    const path = join(dir, 'log');
    await writeFile(path, 'first line\nsecond line\nthird\n');
    expect(await readFileTail(path)).toBe('first line\nsecond line\nthird\n');
    expect(await readFileTail(path, { maxBytes: 16 })).toBe('cond line\nthird\n');
    expect(await readFileTail(path, { maxBytes: 16, fromLineStart: true })).toBe('third\n');
  });

  it('is empty for a file that cannot be read', async () => {
    expect(await readFileTail(join(dir, 'missing'))).toBe('');
  });
});
