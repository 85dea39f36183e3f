import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runTsChild } from '../test/child.js';
import { EventJournal, type JournalEvent, readJournal } from './event-journal.js';
import type { VmEvent } from './events.js';

let root: string;
let dir: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'myhv-journal-'));
  dir = join(root, 'events');
});
afterEach(() => rm(root, { recursive: true, force: true }));

const step = (vm: string, name: string, phase: 'start' | 'done' = 'done'): VmEvent => ({
  type: 'step',
  vm,
  op: 'create',
  step: name,
  phase,
});

async function collect(iterable: AsyncIterable<JournalEvent>): Promise<JournalEvent[]> {
  const out: JournalEvent[] = [];
  for await (const e of iterable) out.push(e);
  return out;
}

/** Takes `count` events from a followed feed, then stops it (the feed gets `stop.signal`, with a deadline). */
async function take(iterable: AsyncIterable<JournalEvent>, count: number, stop: AbortController) {
  const deadline = setTimeout(() => stop.abort(), 15_000);
  const out: JournalEvent[] = [];
  for await (const e of iterable) {
    out.push(e);
    if (out.length === count) stop.abort();
  }
  clearTimeout(deadline);
  return out;
}

describe('EventJournal', () => {
  it('appends whole lines, private, that read back in order with time, pid and seq', async () => {
    const journal = new EventJournal(dir);
    journal.append(step('a', 'tap'));
    journal.append({ type: 'status', vm: 'a', status: 'running' });
    journal.close();
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'journal.ndjson')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'journal.ndjson'), 'utf8').split('\n')).toHaveLength(3);
    const events = await collect(readJournal(dir));
    expect(events).toMatchObject([
      { type: 'step', vm: 'a', step: 'tap', pid: process.pid, seq: 1 },
      { type: 'status', vm: 'a', status: 'running', pid: process.pid, seq: 2 },
    ]);
    expect(Date.parse(events[0]!.time)).toBeGreaterThan(Date.now() - 60_000);
    expect(journal.stats).toEqual({ appended: 2, failed: 0 });
  });

  it('reads nothing (and creates nothing) when there is no journal yet', async () => {
    expect(await collect(readJournal(dir))).toEqual([]);
    expect(readdirSync(root)).toEqual([]);
  });

  it('filters by VM, since and until', async () => {
    mkdirSync(dir, { mode: 0o700 });
    const line = (vm: string, time: string) =>
      `${JSON.stringify({ time, pid: 1, seq: 1, type: 'status', vm, status: 'running' })}\n`;
    writeFileSync(
      join(dir, 'journal.ndjson'),
      line('a', '2026-01-01T00:00:00.000Z') +
        line('b', '2026-01-02T00:00:00.000Z') +
        line('a', '2026-01-03T00:00:00.000Z'),
      { mode: 0o600 },
    );
    const times = async (options: Parameters<typeof readJournal>[1]) =>
      (await collect(readJournal(dir, options))).map((e) => `${e.vm}@${e.time.slice(8, 10)}`);
    expect(await times({ vm: 'a' })).toEqual(['a@01', 'a@03']);
    expect(await times({ since: new Date('2026-01-02T00:00:00Z') })).toEqual(['b@02', 'a@03']);
    expect(await times({ until: new Date('2026-01-02T00:00:00Z') })).toEqual(['a@01', 'b@02']);
  });

  it('skips a torn line and reads on', async () => {
    const journal = new EventJournal(dir);
    journal.append(step('a', 'one'));
    writeFileSync(join(dir, 'journal.ndjson'), '{"time":"2026-\n', { flag: 'a' });
    journal.append(step('a', 'two'));
    expect((await collect(readJournal(dir))).map((e) => e.type === 'step' && e.step)).toEqual(['one', 'two']);
  });

  it('follows: history first, then events appended later, until the signal aborts', async () => {
    const journal = new EventJournal(dir);
    journal.append(step('a', 'old'));
    const stop = new AbortController();
    const feed = take(readJournal(dir, { follow: true, signal: stop.signal }), 3, stop);
    await new Promise((r) => setTimeout(r, 100));
    journal.append(step('a', 'new1'));
    journal.append(step('b', 'new2'));
    const events = await feed;
    expect(events.map((e) => e.type === 'step' && e.step)).toEqual(['old', 'new1', 'new2']);
  });

  it('follows a journal that does not exist yet', async () => {
    const stop = new AbortController();
    const feed = take(readJournal(dir, { follow: true, signal: stop.signal }), 1, stop);
    await new Promise((r) => setTimeout(r, 100));
    new EventJournal(dir).append(step('a', 'first'));
    expect((await feed).map((e) => e.vm)).toEqual(['a']);
  });

  it('rotates past maxBytes, keeps `keep` old files, and reads (and follows) across rotations', async () => {
    const journal = new EventJournal(dir, { maxBytes: 1_500, keep: 2 });
    const stop = new AbortController();
    // 120 events of ~130 bytes: a rotation every ~12 while the follower reads.
    const followed = take(readJournal(dir, { follow: true, signal: stop.signal }), 120, stop);
    for (let i = 0; i < 120; i++) {
      journal.append(step('a', `s${i}`));
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(readdirSync(dir).sort()).toEqual(['journal.1.ndjson', 'journal.2.ndjson', 'journal.ndjson']);
    for (const name of readdirSync(dir)) expect(statSync(join(dir, name)).size).toBeLessThan(1_700);
    const history = await collect(readJournal(dir));
    const steps = history.map((e) => (e.type === 'step' ? Number(e.step.slice(1)) : -1));
    // The oldest were dropped; what is left is the newest, in order, without gaps.
    expect(steps.at(-1)).toBe(119);
    expect(steps).toEqual(steps.map((_, i) => steps[0]! + i));
    expect(steps.length).toBeLessThan(60);
    const all = await followed;
    expect(all.map((e) => (e.type === 'step' ? e.step : ''))).toEqual(
      Array.from({ length: 120 }, (_, i) => `s${i}`),
    );
  });

  it('a follower that slept through several rotations reads every file in between, in order', async () => {
    const journal = new EventJournal(dir, { maxBytes: 1_500, keep: 4 });
    journal.append(step('a', 's0'));
    const stop = new AbortController();
    const seen: string[] = [];
    const followed = (async () => {
      for await (const e of readJournal(dir, { follow: true, signal: stop.signal })) {
        seen.push(e.type === 'step' ? e.step : '');
        if (seen.length === 40) stop.abort();
      }
    })();
    while (seen.length === 0) await new Promise((r) => setTimeout(r, 5));
    // 39 more without yielding: about three rotations before the follower looks again.
    for (let i = 1; i < 40; i++) journal.append(step('a', `s${i}`));
    expect(readdirSync(dir).filter((name) => name.startsWith('journal.')).length).toBeGreaterThanOrEqual(3);
    const deadline = setTimeout(() => stop.abort(), 10_000);
    await followed;
    clearTimeout(deadline);
    expect(seen).toEqual(Array.from({ length: 40 }, (_, i) => `s${i}`));
  });

  it('counts a failed write instead of throwing', () => {
    mkdirSync(root, { recursive: true });
    writeFileSync(dir, 'not a directory');
    const journal = new EventJournal(dir);
    expect(() => journal.append(step('a', 'tap'))).not.toThrow();
    expect(journal.stats).toMatchObject({ appended: 0, failed: 1 });
    expect(journal.stats.lastError).toBeInstanceOf(Error);
  });

  it('refuses to read a journal directory others can write (UNSAFE_PERMISSIONS)', async () => {
    mkdirSync(dir, { mode: 0o700 });
    const { chmodSync } = await import('node:fs');
    chmodSync(dir, 0o777);
    await expect(collect(readJournal(dir))).rejects.toMatchObject({ code: 'UNSAFE_PERMISSIONS' });
  });

  it('never interleaves lines of two processes writing (and rotating) at once', async () => {
    // 2 × 3,000 lines of ~1.1 KiB: big enough for writes of the two to overlap, rotating every ~1 MiB.
    await Promise.all([
      runTsChild('journal-writer.ts', [dir, '3000', String(1024 * 1024)]),
      runTsChild('journal-writer.ts', [dir, '3000', String(1024 * 1024)]),
    ]);
    const raw = readdirSync(dir)
      .filter((n) => n.endsWith('.ndjson'))
      .flatMap((n) => readFileSync(join(dir, n), 'utf8').split('\n').filter(Boolean));
    expect(raw).toHaveLength(6000);
    for (const line of raw) expect(() => JSON.parse(line)).not.toThrow();
    const events = await collect(readJournal(dir));
    expect(events).toHaveLength(6000);
    const byPid = new Map<number, JournalEvent[]>();
    for (const e of events) byPid.set(e.pid, [...(byPid.get(e.pid) ?? []), e]);
    expect(byPid.size).toBe(2);
    // Each writer's events come back in the order it wrote them.
    for (const mine of byPid.values()) expect(mine.map((e) => e.seq)).toEqual(mine.map((_, i) => i + 1));
  }, 60_000);
});
