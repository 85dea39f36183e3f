import { StringDecoder } from 'node:string_decoder';

const NEWLINE = 0x0a;
const HEAD_BYTES = 256;
const TAIL_BYTES = 64;

/** What is kept of a line longer than the limit: its size and both ends (enough to find a JSON-RPC id). */
export interface OversizedLine {
  /** Bytes seen for the line, newline excluded. */
  readonly bytes: number;
  readonly head: string;
  readonly tail: string;
}

/** What a `LineSplitter` calls: each complete line, and each line dropped for being over the limit. */
export interface LineSplitterHandlers {
  /** A complete line, without its newline (or `\r\n`); blank lines are skipped. */
  onLine(line: string): void;
  /** A line over the limit, dropped without ever being held in memory whole. */
  onOversized(line: OversizedLine): void;
}

/**
 * Splits a byte stream into newline-delimited UTF-8 lines of at most `maxLineBytes` bytes. Works on Buffers so the
 * limit counts bytes, and slices each chunk instead of copying it when a chunk holds whole lines.
 */
export class LineSplitter {
  readonly #maxLineBytes: number;
  readonly #handlers: LineSplitterHandlers;
  #parts: Buffer[] = [];
  #bytes = 0;
  // Set while dropping an over-long line until its newline.
  #oversized: { bytes: number; head: string; tail: Buffer } | undefined;

  constructor(maxLineBytes: number, handlers: LineSplitterHandlers) {
    if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1) {
      throw new TypeError(`maxLineBytes must be a positive integer, got ${String(maxLineBytes)}`);
    }
    this.#maxLineBytes = maxLineBytes;
    this.#handlers = handlers;
  }

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      if (newline === -1) {
        this.#append(chunk.subarray(start));
        return;
      }
      // The common case, a whole line inside this chunk, is decoded in place without a Buffer view.
      if (this.#parts.length === 0 && !this.#oversized && newline - start <= this.#maxLineBytes) {
        this.#emit(chunk, start, newline);
      } else this.#complete(chunk.subarray(start, newline));
      start = newline + 1;
    }
  }

  /** The stream ended: a last line without its newline still counts. */
  end(): void {
    if (this.#bytes > 0 || this.#oversized) this.#complete(Buffer.alloc(0));
  }

  #append(part: Buffer): void {
    if (this.#oversized) {
      this.#oversized.bytes += part.length;
      this.#oversized.tail = lastBytes(this.#oversized.tail, part);
      return;
    }
    if (this.#bytes + part.length > this.#maxLineBytes) {
      this.#startOversized(part);
      return;
    }
    this.#parts.push(part);
    this.#bytes += part.length;
  }

  #complete(part: Buffer): void {
    if (!this.#oversized && this.#bytes + part.length > this.#maxLineBytes) this.#startOversized(part);
    else if (this.#oversized) {
      this.#oversized.bytes += part.length;
      this.#oversized.tail = lastBytes(this.#oversized.tail, part);
    }
    const oversized = this.#oversized;
    if (oversized) {
      this.#oversized = undefined;
      this.#handlers.onOversized({
        bytes: oversized.bytes,
        head: oversized.head,
        tail: oversized.tail.toString('utf8'),
      });
      return;
    }
    const parts = this.#parts;
    this.#parts = [];
    this.#bytes = 0;
    if (parts.length === 0) {
      this.#emit(part, 0, part.length);
      return;
    }
    // A line over several chunks is decoded chunk by chunk: joining the Buffers first would copy it once more.
    const decoder = new StringDecoder('utf8');
    let line = '';
    for (const earlier of parts) line += decoder.write(earlier);
    line += decoder.write(part) + decoder.end();
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.trim() !== '') this.#handlers.onLine(line);
  }

  /** Hands `bytes[start, end)` on as a line, without a trailing `\r`; blank lines are skipped. */
  #emit(bytes: Buffer, start: number, end: number): void {
    if (end > start && bytes[end - 1] === 0x0d) end--;
    if (end === start) return;
    const line = bytes.toString('utf8', start, end);
    if (line.trim() !== '') this.#handlers.onLine(line);
  }

  #startOversized(part: Buffer): void {
    const seen = this.#parts.length === 0 ? part : Buffer.concat([...this.#parts, part]);
    this.#oversized = {
      bytes: seen.length,
      head: seen.toString('utf8', 0, Math.min(HEAD_BYTES, seen.length)),
      tail: Buffer.from(seen.subarray(Math.max(0, seen.length - TAIL_BYTES))),
    };
    this.#parts = [];
    this.#bytes = 0;
  }
}

function lastBytes(previous: Buffer, next: Buffer): Buffer {
  if (next.length >= TAIL_BYTES) return Buffer.from(next.subarray(next.length - TAIL_BYTES));
  const joined = Buffer.concat([previous, next]);
  return joined.subarray(Math.max(0, joined.length - TAIL_BYTES));
}

/**
 * The numeric id of a JSON-RPC message from the ends of a line too long to parse: at the start
 * (`{"jsonrpc":"2.0","id":7,…`) or as the top-level object's last member (`…,"id":7}`). Nested ids never match,
 * so a call is only failed early when the line surely answers it.
 */
export function idFromOversizedLine(line: OversizedLine): number | undefined {
  const head = /^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*(\d{1,15})\s*[,}]/.exec(line.head);
  if (head) return Number(head[1]);
  const tail = /[,{]\s*"id"\s*:\s*(\d{1,15})\s*\}\s*$/.exec(line.tail);
  return tail ? Number(tail[1]) : undefined;
}
