import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { fdWriter } from './stdio.js';

/** A child reading its stdin through `script`, and the descriptor of our (non-blocking) end of that stdin. */
function reader(script: string) {
  const child = spawn('sh', ['-c', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const fd = (child.stdin as unknown as { _handle: { fd: number } })._handle.fd;
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += String(chunk);
  });
  const output = async () => {
    await once(child, 'close');
    return out;
  };
  return { child, fd, output };
}

// EPIPE (the reader went away) is covered end to end in test/bin.test.ts.
describe('fdWriter', () => {
  it('writes everything through a non-blocking descriptor that fills up (EAGAIN), in order', async () => {
    // The reader starts late, so the socket buffer fills and writes must wait for it.
    const { child, fd, output } = reader('sleep 0.3; wc -c');
    const out = fdWriter(fd);
    const chunk = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 16; i++) out.write(chunk);
    out.write('end\n');
    child.stdin.end();
    expect((await output()).trim()).toBe(String(16 * 64 * 1024 + 4));
  });
});
