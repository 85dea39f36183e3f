import fs from 'node:fs';
import net from 'node:net';
import type { Writable } from 'node:stream';

/**
 * The simulator's `--event-monitor` writer, in Cloud Hypervisor's format: each event pretty-printed (serde's
 * two-space layout) and followed by a blank line. Like the VMM it never blocks on a slow reader: a write that
 * fails (reader gone) drops the event.
 */
export class SimEventWriter {
  readonly #out: Writable;
  readonly #start = process.hrtime.bigint();
  #closed = false;

  constructor(target: { fd: number } | { path: string }) {
    if ('path' in target) {
      this.#out = fs.createWriteStream(target.path, { flags: 'w' });
    } else {
      const stat = fs.fstatSync(target.fd);
      // Pipes and sockets go through libuv's non-blocking stream; files through fs.
      this.#out =
        stat.isFIFO() || stat.isSocket()
          ? new net.Socket({ fd: target.fd, readable: false, writable: true })
          : fs.createWriteStream('', { fd: target.fd, autoClose: false });
    }
    this.#out.on('error', () => {
      this.#closed = true;
    });
  }

  write(source: string, event: string, properties?: Readonly<Record<string, string>>): void {
    if (this.#closed) return;
    const elapsed = process.hrtime.bigint() - this.#start;
    const record = {
      timestamp: { secs: Number(elapsed / 1_000_000_000n), nanos: Number(elapsed % 1_000_000_000n) },
      source,
      event,
      properties: properties ?? null,
    };
    this.#out.write(`${JSON.stringify(record, null, 2)}\n\n`);
  }

  /** Flushes what was written and closes the target. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return new Promise((resolve) => {
      this.#out.end(() => resolve());
      // A reader that went away must not keep us waiting.
      setTimeout(resolve, 500).unref();
    });
  }
}
