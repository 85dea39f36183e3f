import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { z } from 'zod';

/** One event of the VMM's `--event-monitor` feed. */
export interface ChvEvent {
  /** Time since the VMM started. */
  readonly timestamp: { readonly secs: number; readonly nanos: number };
  /** `vmm`, `vm`, `cpu_manager`, `virtio-device`, … */
  readonly source: string;
  /** `starting`, `booting`, `booted`, `paused`, `shutdown`, `deleted`, `device-removed`, … */
  readonly event: string;
  readonly properties: Readonly<Record<string, string>> | null;
  readonly [key: string]: unknown;
}

const chvEventSchema = z.looseObject({
  timestamp: z.looseObject({ secs: z.number(), nanos: z.number() }),
  source: z.string(),
  event: z.string(),
  properties: z.record(z.string(), z.string()).nullish(),
});

/** How `parseEventStream` reads: cancellation and the size of its buffer. */
export interface ChvEventStreamOptions {
  /** Parsed events kept for a slow consumer; past this the oldest are dropped (and counted). Default 1024. */
  readonly maxBuffered?: number;
  /** An event longer than this many characters is discarded as malformed. Default 1 Mi. */
  readonly maxEventLength?: number;
  /** Stops reading and ends the iteration. */
  readonly signal?: AbortSignal;
}

/** An event feed: iterate it once; `break` or `close()` stops reading. */
export interface ChvEventStream extends AsyncIterable<ChvEvent>, AsyncDisposable {
  /** Events dropped because the consumer fell more than `maxBuffered` behind. */
  readonly dropped: number;
  /** Text that was not an event (broken JSON, garbage between objects, oversized objects). */
  readonly malformed: number;
  close(): Promise<void>;
}

/**
 * Parses Cloud Hypervisor's event-monitor output — pretty-printed JSON objects separated by blank lines — into
 * events. Objects are found by brace matching (strings and escapes respected), so chunk boundaries may fall
 * anywhere, even inside a UTF-8 sequence. The input is read continuously whatever the consumer does, so the VMM
 * is never stalled by a slow reader: a bounded buffer drops the oldest events instead.
 */
export function parseEventStream(
  input: Readable | AsyncIterable<Uint8Array | string>,
  options: ChvEventStreamOptions = {},
): ChvEventStream {
  return new EventStream(input, options);
}

const LBRACE = 0x7b;
const RBRACE = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

class EventStream implements ChvEventStream {
  dropped = 0;
  malformed = 0;
  readonly #queue: ChvEvent[] = [];
  readonly #maxBuffered: number;
  readonly #maxEventChars: number;
  readonly #decoder = new StringDecoder('utf8');
  readonly #signal: AbortSignal | undefined;
  #waiter: (() => void) | undefined;
  #ended = false;
  #iterating = false;
  // Splitter state: the text of the object being assembled and where we are inside it.
  #parts: string[] = [];
  #partChars = 0;
  #depth = 0;
  #inString = false;
  #escape = false;
  #inGarbage = false;
  #detach: (() => void) | undefined;

  constructor(input: Readable | AsyncIterable<Uint8Array | string>, options: ChvEventStreamOptions) {
    this.#maxBuffered = options.maxBuffered ?? 1024;
    this.#maxEventChars = options.maxEventLength ?? 1024 * 1024;
    if (!(this.#maxBuffered >= 1)) throw new TypeError('parseEventStream: maxBuffered must be at least 1');
    this.#signal = options.signal;
    if (this.#signal?.aborted) {
      this.#end();
      return;
    }
    this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
    if (isReadable(input)) this.#readFlowing(input);
    else void this.#pump(input);
  }

  #onAbort = () => {
    void this.close();
  };

  #readFlowing(input: Readable) {
    const onData = (chunk: Buffer | string) => this.#push(chunk);
    const onEnd = () => this.#end();
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('close', onEnd);
    input.once('error', onEnd);
    this.#detach = () => {
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('close', onEnd);
      input.off('error', onEnd);
      // An error after we stopped listening must not crash the process.
      input.on('error', () => {});
      input.destroy();
    };
    input.resume();
  }

  async #pump(input: AsyncIterable<Uint8Array | string>) {
    try {
      for await (const chunk of input) {
        if (this.#ended) break;
        this.#push(chunk);
      }
    } catch {
      // A broken feed ends the events; nothing to report to a consumer that only wants events.
    }
    this.#end();
  }

  #push(chunk: Uint8Array | string) {
    if (this.#ended) return;
    const text = typeof chunk === 'string' ? chunk : this.#decoder.write(Buffer.from(chunk));
    let start = this.#depth > 0 ? 0 : -1;
    for (let i = 0; i < text.length; i++) {
      const ch = text.charCodeAt(i);
      if (this.#depth === 0) {
        if (ch === LBRACE) {
          start = i;
          this.#depth = 1;
          this.#inString = false;
          this.#escape = false;
          this.#inGarbage = false;
        } else if (ch > 0x20 && !this.#inGarbage) {
          this.#inGarbage = true;
          this.malformed++;
        }
        continue;
      }
      if (this.#inString) {
        if (this.#escape) this.#escape = false;
        else if (ch === BACKSLASH) this.#escape = true;
        else if (ch === QUOTE) this.#inString = false;
        continue;
      }
      if (ch === QUOTE) this.#inString = true;
      else if (ch === LBRACE) this.#depth++;
      else if (ch === RBRACE && --this.#depth === 0) {
        const objectText = this.#parts.join('') + text.slice(start, i + 1);
        this.#parts = [];
        this.#partChars = 0;
        start = -1;
        this.#emit(objectText);
      }
    }
    if (this.#depth > 0 && start >= 0) {
      const part = text.slice(start);
      this.#parts.push(part);
      this.#partChars += part.length;
      if (this.#partChars > this.#maxEventChars) {
        // Oversized: drop it and resynchronise on the next top-level brace.
        this.#parts = [];
        this.#partChars = 0;
        this.#depth = 0;
        this.#inGarbage = true;
        this.malformed++;
      }
    }
  }

  #emit(text: string) {
    if (text.length > this.#maxEventChars) {
      this.malformed++;
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      this.malformed++;
      return;
    }
    const result = chvEventSchema.safeParse(value);
    if (!result.success) {
      this.malformed++;
      return;
    }
    if (this.#queue.length >= this.#maxBuffered) {
      this.#queue.shift();
      this.dropped++;
    }
    this.#queue.push({ ...result.data, properties: result.data.properties ?? null });
    this.#wake();
  }

  #end() {
    if (this.#ended) return;
    this.#ended = true;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#wake();
  }

  #wake() {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }

  async close(): Promise<void> {
    this.#queue.length = 0;
    this.#detach?.();
    this.#detach = undefined;
    // An async-iterable input stops at its next chunk: #pump checks #ended.
    this.#end();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  [Symbol.asyncIterator](): AsyncIterator<ChvEvent> {
    if (this.#iterating) throw new TypeError('parseEventStream: the event stream has one consumer');
    this.#iterating = true;
    return {
      next: async (): Promise<IteratorResult<ChvEvent>> => {
        for (;;) {
          const event = this.#queue.shift();
          if (event) return { value: event, done: false };
          if (this.#ended) return { value: undefined, done: true };
          await new Promise<void>((resolve) => {
            this.#waiter = resolve;
          });
        }
      },
      return: async (): Promise<IteratorResult<ChvEvent>> => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }
}

function isReadable(input: unknown): input is Readable {
  return typeof (input as Readable).on === 'function' && typeof (input as Readable).resume === 'function';
}
