import { open } from 'node:fs/promises';

/** Keeps the last `maxBytes` of a stream's output (a child's stderr) for error messages. */
export class OutputTail {
  readonly #maxBytes: number;
  #chunks: Buffer[] = [];
  #bytes = 0;

  constructor(maxBytes = 8 * 1024) {
    this.#maxBytes = maxBytes;
  }

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    while (this.#bytes - (this.#chunks[0]?.length ?? 0) >= this.#maxBytes && this.#chunks.length > 1) {
      this.#bytes -= this.#chunks.shift()!.length;
    }
  }

  text(): string {
    const all = Buffer.concat(this.#chunks);
    return all.subarray(Math.max(0, all.length - this.#maxBytes)).toString('utf8');
  }
}

/** Options of `readFileTail`: how much of the end, and whether to start at a line. */
export interface ReadFileTailOptions {
  /** At most this many bytes from the end. Default 8 KiB. */
  readonly maxBytes?: number;
  /** When the file is longer than `maxBytes`, drop the partial first line (if a line break follows). */
  readonly fromLineStart?: boolean;
}

/** The last bytes of a file (a daemon's log), or '' when it cannot be read. */
export async function readFileTail(
  path: string,
  { maxBytes = 8 * 1024, fromLineStart = false }: ReadFileTailOptions = {},
): Promise<string> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, 'r');
    const { size } = await handle.stat();
    const length = Math.min(size, maxBytes);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    const text = buffer.toString('utf8');
    const firstBreak = text.indexOf('\n');
    return fromLineStart && size > maxBytes && firstBreak >= 0 ? text.slice(firstBreak + 1) : text;
  } catch {
    return '';
  } finally {
    await handle?.close();
  }
}
