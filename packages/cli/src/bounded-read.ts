import { open } from 'node:fs/promises';

/** The most a spec or config file may hold: real ones are a few hundred bytes. */
export const MAX_INPUT_FILE_BYTES = 1024 * 1024;

/**
 * The text of `path`, or undefined when it holds more than `maxBytes`. A regular file's size is checked before
 * reading; anything else (a pipe, `/dev/zero`) is read up to one byte past the limit, never further.
 * Errors of open and read pass through.
 */
export async function readFileUpTo(path: string, maxBytes: number): Promise<string | undefined> {
  const file = await open(path, 'r');
  try {
    const stat = await file.stat();
    if (stat.isFile() && stat.size > maxBytes) return undefined;
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await file.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return length > maxBytes ? undefined : buffer.toString('utf8', 0, length);
  } finally {
    await file.close();
  }
}

/** The text of `stream`, or undefined once it passes `maxBytes`: reading stops there (the stream is destroyed). */
export async function readStreamUpTo(
  stream: NodeJS.ReadableStream,
  maxBytes: number,
): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    length += bytes.length;
    // Leaving the loop ends the iteration, which destroys the stream: nothing more is read.
    if (length > maxBytes) return undefined;
    chunks.push(bytes);
  }
  return Buffer.concat(chunks).toString('utf8');
}
