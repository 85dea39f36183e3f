import { open } from 'node:fs/promises';

/** The last `maxBytes` of a log file (from a line start where possible), or '' when it cannot be read. */
export async function readLogTail(path: string, maxBytes = 4096): Promise<string> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, 'r');
    const { size } = await handle.stat();
    const length = Math.min(size, maxBytes);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    const text = buffer.toString('utf8');
    const firstBreak = text.indexOf('\n');
    return size > maxBytes && firstBreak >= 0 ? text.slice(firstBreak + 1) : text;
  } catch {
    return '';
  } finally {
    await handle?.close();
  }
}
