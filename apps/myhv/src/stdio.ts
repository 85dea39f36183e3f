import { fstatSync, writeSync } from 'node:fs';

/** Where the CLI writes, and how to wait until all of it has left the process. */
export interface Stdio {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** Resolves once everything written so far has been handed to the kernel. */
  flushed(): Promise<void>;
}

/**
 * stdout and stderr of this process. The first touch of `process.stdout` or `process.stderr` on a pipe loads `net`
 * and the stream modules (~3 ms, a tenth of `myhv version`); a pipe, socket or file gets plain synchronous writes
 * instead. A character device — a terminal (or /dev/null) — keeps Node's stream, which knows about terminals.
 */
export function processStdio(): Stdio {
  const streams: NodeJS.WritableStream[] = [];
  const open = (fd: 1 | 2): NodeJS.WritableStream => {
    if (!isCharacterDevice(fd)) return fdWriter(fd);
    const stream = fd === 1 ? process.stdout : process.stderr;
    streams.push(stream);
    return stream;
  };
  return {
    stdout: open(1),
    stderr: open(2),
    // A large document on a pipe may still be queued in a Node stream when the command is done.
    flushed: () =>
      Promise.all(streams.map((s) => new Promise<void>((resolve) => s.write('', () => resolve())))).then(
        () => undefined,
      ),
  };
}

function isCharacterDevice(fd: number): boolean {
  try {
    return fstatSync(fd).isCharacterDevice();
  } catch {
    // Closed or unusable: Node's own stream copes with that.
    return true;
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * A write-only stream over a file descriptor with synchronous writes. The CLI only calls `write` and reads `isTTY`
 * (see CliIo), which is all this provides. A reader that went away (EPIPE, e.g. `myhv vm ls | head -1`) ends the
 * output silently, as with Node's stream; a non-blocking descriptor that is full (EAGAIN) is waited for.
 */
export function fdWriter(fd: number): NodeJS.WritableStream {
  let closed = false;
  const write = (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    let offset = 0;
    while (!closed && offset < data.length) {
      try {
        offset += writeSync(fd, data, offset);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') Atomics.wait(sleeper, 0, 0, 1);
        else if (code === 'EPIPE') closed = true;
        else throw error;
      }
    }
    const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined;
    if (callback) process.nextTick(callback);
    return true;
  };
  return { isTTY: false, write } as unknown as NodeJS.WritableStream;
}
