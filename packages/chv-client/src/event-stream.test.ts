import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { type ChvEvent, parseEventStream } from './event-stream.js';

/** Cloud Hypervisor's layout: serde pretty-print (two spaces) and a blank line after each event. */
function chFormat(events: readonly object[]): string {
  return events.map((event) => `${JSON.stringify(event, null, 2)}\n\n`).join('');
}

const sample = [
  { timestamp: { secs: 0, nanos: 5_000 }, source: 'vmm', event: 'starting', properties: null },
  { timestamp: { secs: 1, nanos: 2 }, source: 'vm', event: 'booted', properties: null },
  {
    timestamp: { secs: 2, nanos: 7 },
    source: 'vm',
    event: 'device-removed',
    properties: { id: 'disk{0}"}\\ é 🙂', note: '{"not":"an object"}' },
  },
];

async function collect(stream: AsyncIterable<ChvEvent>): Promise<ChvEvent[]> {
  const events: ChvEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

describe('parseEventStream', () => {
  it('parses the format whatever the chunk boundaries, even inside UTF-8 sequences and strings', async () => {
    const bytes = Buffer.from(chFormat(sample));
    for (let cut = 1; cut < bytes.length; cut++) {
      const input = Readable.from([bytes.subarray(0, cut), bytes.subarray(cut)], { objectMode: false });
      const events = await collect(parseEventStream(input));
      expect(events, `cut at byte ${cut}`).toEqual(sample);
    }
  });

  it('parses byte-by-byte input and compact objects without blank lines', async () => {
    const bytes = Buffer.from(chFormat(sample) + sample.map((e) => JSON.stringify(e)).join(''));
    const chunks = [...bytes].map((b) => Buffer.from([b]));
    const events = await collect(parseEventStream(Readable.from(chunks)));
    expect(events).toEqual([...sample, ...sample]);
  });

  it('drops the oldest events (and counts them) when the consumer is slow', async () => {
    const input = new PassThrough();
    const stream = parseEventStream(input, { maxBuffered: 100 });
    const all = Array.from({ length: 1_000 }, (_, i) => ({
      timestamp: { secs: i, nanos: 0 },
      source: 'vm',
      event: `e${i}`,
      properties: null,
    }));
    input.end(chFormat(all));
    await once(input, 'end');
    const events = await collect(stream);
    expect(events.map((e) => e.event)).toEqual(all.slice(900).map((e) => e.event));
    expect(stream.dropped).toBe(900);
  });

  it('never stalls the writer: a process writing far more than a pipe holds exits while nobody iterates', async () => {
    // 4 MiB of events through a 64 KiB pipe: the writer blocks forever unless the parser keeps reading.
    const script = `
      const fs = require('fs');
      const e = JSON.stringify({timestamp:{secs:0,nanos:0},source:'vm',event:'x',properties:{pad:'${'p'.repeat(900)}'}}, null, 2) + '\\n\\n';
      for (let i = 0; i < 4096; i++) fs.writeSync(1, e);
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const stream = parseEventStream(child.stdout, { maxBuffered: 16 });
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
    const events = await collect(stream);
    expect(events).toHaveLength(16);
    expect(stream.dropped).toBe(4096 - 16);
  }, 20_000);

  it('counts malformed text and resynchronises on the next object', async () => {
    const text = `garbage\n${chFormat([sample[0]!])}{"broken": }\n\n{"source":"vm"}\n\n${chFormat([sample[1]!])}`;
    const stream = parseEventStream(Readable.from([text]));
    expect(await collect(stream)).toEqual([sample[0], sample[1]]);
    expect(stream.malformed).toBe(3);
  });

  it('discards an oversized object', async () => {
    const big = { ...sample[0]!, properties: { pad: 'x'.repeat(2_000) } };
    const stream = parseEventStream(Readable.from([chFormat([big, sample[1]!])]), { maxEventLength: 1_000 });
    expect(await collect(stream)).toEqual([sample[1]]);
    expect(stream.malformed).toBeGreaterThanOrEqual(1);
  });

  it('reads async iterables too, and ends on abort', async () => {
    async function* chunks() {
      yield chFormat([sample[0]!]);
      await new Promise(() => {}); // a feed that never ends
    }
    const controller = new AbortController();
    const stream = parseEventStream(chunks(), { signal: controller.signal });
    const iterator = stream[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toEqual(sample[0]);
    const pending = iterator.next();
    controller.abort();
    expect(await pending).toEqual({ value: undefined, done: true });
  });

  it('stops reading (and destroys the input) on break', async () => {
    const input = new PassThrough();
    const stream = parseEventStream(input);
    input.write(chFormat(sample));
    for await (const event of stream) {
      expect(event.event).toBe('starting');
      break;
    }
    expect(input.destroyed).toBe(true);
    expect(() => stream[Symbol.asyncIterator]()).toThrow(TypeError);
  });
});
