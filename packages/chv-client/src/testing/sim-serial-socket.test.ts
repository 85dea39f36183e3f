import { existsSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers.js';
import { ChvClient } from '../index.js';
import { startSimulator } from './index.js';
import { probeGuestSerial, writeProbeGuest } from './probe-guest.js';

/** Connects to `path` and collects what arrives until `until` holds or the peer closes. */
function readSocket(
  path: string,
  until: (text: string) => boolean,
): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString();
      if (until(text)) {
        socket.destroy();
        resolve({ text, closed: false });
      }
    });
    socket.on('close', () => resolve({ text, closed: true }));
    socket.on('error', reject);
  });
}

describe('simulator serial Socket mode', () => {
  it('binds the socket at boot, plays the probe guest to one client, drops a second, unbinds at shutdown', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    const serialSocket = join(dir.path, 'serial.sock');
    const kernel = await writeProbeGuest(join(dir.path, 'probe.elf'));
    await using _sim = await startSimulator({ socketPath });
    await using client = new ChvClient({ socketPath });
    await client.vmCreate({
      payload: { kernel, cmdline: 'console=ttyS0' },
      serial: { mode: 'Socket', socket: serialSocket },
      console: { mode: 'Off' },
    });
    expect(existsSync(serialSocket)).toBe(false);
    await client.vmBoot();
    expect(existsSync(serialSocket)).toBe(true);
    const expected = probeGuestSerial('console=ttyS0');
    const first = net.connect(serialSocket);
    let seen = '';
    first.on('data', (chunk) => {
      seen += chunk.toString();
    });
    await new Promise((resolve) => first.once('connect', resolve));
    for (let i = 0; i < 200 && seen !== expected; i++) await new Promise((r) => setTimeout(r, 10));
    expect(seen).toBe(expected);
    // CH serves one client at a time: another connection is closed without output.
    expect(await readSocket(serialSocket, () => false)).toEqual({ text: '', closed: true });
    const firstClosed = new Promise((resolve) => first.once('close', resolve));
    await client.vmShutdown();
    await firstClosed;
    expect(existsSync(serialSocket)).toBe(false);
  });
});
