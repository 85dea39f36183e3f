import { existsSync } from 'node:fs';
import { truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test/temp-dir.js';
import { readFileUpTo, readStreamUpTo } from './bounded-read.js';

const CHUNK = 64 * 1024;

/** `total` bytes in 64 KiB chunks, counting how many were pulled. */
function countingStream(total: number): { stream: Readable; pulled: () => number } {
  let pulled = 0;
  function* chunks() {
    for (let sent = 0; sent < total; sent += CHUNK) {
      pulled += 1;
      yield Buffer.alloc(CHUNK, 0x61);
    }
  }
  return { stream: Readable.from(chunks()), pulled: () => pulled };
}

describe('readFileUpTo', () => {
  it('reads a file of up to the limit, and refuses one byte more', async () => {
    const dir = await tempDir('myhv-cli-bounded-');
    const file = join(dir, 'f');
    await writeFile(file, 'x'.repeat(1000));
    expect(await readFileUpTo(file, 1000)).toBe('x'.repeat(1000));
    expect(await readFileUpTo(file, 999)).toBeUndefined();
  });

  it('refuses a huge regular file by its size, without reading it', async () => {
    const file = join(await tempDir('myhv-cli-bounded-'), 'sparse');
    await writeFile(file, '');
    await truncate(file, 8 * 1024 * 1024 * 1024); // 8 GiB, sparse: reading it would take seconds and the memory
    const started = performance.now();
    expect(await readFileUpTo(file, 1024 * 1024)).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it.skipIf(!existsSync('/dev/zero'))('stops at the limit on a file without end (/dev/zero)', async () => {
    expect(await readFileUpTo('/dev/zero', 1024 * 1024)).toBeUndefined();
  });

  it('passes errors through (a missing file, a directory)', async () => {
    await expect(readFileUpTo('/nonexistent/file', 10)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(readFileUpTo(await tempDir('myhv-cli-bounded-'), 10)).rejects.toMatchObject({
      code: 'EISDIR',
    });
  });
});

describe('readStreamUpTo', () => {
  it('reads a stream of up to the limit', async () => {
    const { stream } = countingStream(4 * CHUNK);
    expect(await readStreamUpTo(stream, 4 * CHUNK)).toHaveLength(4 * CHUNK);
  });

  it('stops pulling once past the limit', async () => {
    const { stream, pulled } = countingStream(64 * 1024 * 1024);
    expect(await readStreamUpTo(stream, 1024 * 1024)).toBeUndefined();
    // 16 chunks fill the limit, the 17th passes it; Readable.from reads at most one ahead.
    expect(pulled()).toBeLessThanOrEqual(18);
    expect(stream.destroyed).toBe(true);
  });
});
