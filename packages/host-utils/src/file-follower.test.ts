import { appendFile, mkdtemp, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { followFile } from './file-follower.js';

const dir = await mkdtemp(join(tmpdir(), 'host-utils-follow-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Collects the feed's text until it holds `want`; the feed goes on. */
async function readUntil(feed: AsyncGenerator<Buffer>, want: string): Promise<string> {
  let text = '';
  while (!text.includes(want)) {
    const next = await feed.next();
    if (next.done) break;
    text += next.value.toString('utf8');
  }
  return text;
}

describe('followFile', () => {
  it('yields what is there, then what is appended, and ends after a last read once `until` settles', async () => {
    const path = join(dir, 'events');
    await writeFile(path, 'one\n');
    let done!: () => void;
    const until = new Promise<void>((resolve) => {
      done = resolve;
    });
    const chunks: string[] = [];
    const reading = (async () => {
      for await (const chunk of followFile(path, { until, pollMs: 20 })) chunks.push(chunk.toString());
    })();
    await new Promise((r) => setTimeout(r, 50));
    await appendFile(path, 'two\n');
    await new Promise((r) => setTimeout(r, 50));
    await appendFile(path, 'three\n');
    done();
    await reading;
    expect(chunks.join('')).toBe('one\ntwo\nthree\n');
  });

  it('waits for a file that does not exist yet, and starts at `start`', async () => {
    const path = join(dir, 'later');
    const controller = new AbortController();
    const text = readUntil(followFile(path, { signal: controller.signal, pollMs: 10, start: 4 }), 'tail');
    await new Promise((r) => setTimeout(r, 30));
    await writeFile(path, 'headtail');
    expect(await text).toBe('tail');
    controller.abort();
  });

  it('starts over on a truncated or replaced file', async () => {
    const path = join(dir, 'rotated');
    await writeFile(path, 'aaaa\n');
    const feed = followFile(path, { pollMs: 10 });
    expect(await readUntil(feed, 'aaaa\n')).toBe('aaaa\n');
    await truncate(path, 0);
    await appendFile(path, 'b\n');
    expect(await readUntil(feed, 'b\n')).toBe('b\n');
    await writeFile(join(dir, 'rotated.new'), 'c\n');
    await rename(join(dir, 'rotated.new'), path);
    expect(await readUntil(feed, 'c\n')).toBe('c\n');
    await feed.return(undefined);
  });

  it('ends at once when the signal aborts', async () => {
    const path = join(dir, 'quiet');
    await writeFile(path, '');
    const controller = new AbortController();
    const chunks: Buffer[] = [];
    const reading = (async () => {
      for await (const chunk of followFile(path, { signal: controller.signal, pollMs: 10_000 }))
        chunks.push(chunk);
    })();
    await new Promise((r) => setTimeout(r, 20));
    controller.abort();
    await reading;
    expect(chunks).toEqual([]);
  });
});
