import { PassThrough, Readable } from 'node:stream';
import type { CliIo } from '../src/cli-io.js';
import { run } from '../src/run.js';

export interface Captured {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI in-process with captured output and a controlled environment (nothing from the real one). */
export async function runCaptured(
  argv: readonly string[],
  options: { env?: Record<string, string | undefined>; isTTY?: boolean; stdin?: string } = {},
): Promise<Captured> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const io: CliIo = {
    stdout,
    stderr,
    env: { PATH: '/nonexistent', ...options.env },
    isTTY: options.isTTY ?? false,
    ...(options.stdin !== undefined ? { stdin: Readable.from([options.stdin]) } : {}),
  };
  const code = await run(argv, io);
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}
