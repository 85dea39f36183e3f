import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VmManagerError } from '../../src/errors.js';
import { netnsHostProbe } from '../../src/host-probe.js';
import { isRoot } from '../harness.js';

const exec = promisify(execFile);
const skip = isRoot ? undefined : 'needs root (creates a network namespace)';
if (skip) console.warn(`netns host probe tests skipped: ${skip}`);

const netns = `myhv-probe-${process.pid}`;
const listeners: ChildProcess[] = [];

/** Runs `script` with node inside the namespace; resolves once it printed "ready". */
function inNetns(script: string): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  listeners.push(child);
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
    child.on('exit', (code) => reject(new Error(`listener exited with ${code}`)));
  });
}

// The probe reads the namespace the VMs live in, not this process's: a socket there is seen, one here is not.
describe.skipIf(skip)('netnsHostProbe (a real network namespace)', () => {
  beforeAll(async () => {
    await exec('ip', ['netns', 'add', netns]);
    await exec('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    await exec('ip', ['-n', netns, 'addr', 'add', '192.0.2.77/32', 'dev', 'lo']);
    await inNetns("require('net').createServer().listen(47123, '127.0.0.1', () => console.log('ready'))");
    await inNetns(
      "const s = require('dgram').createSocket('udp6'); s.bind(47124, () => console.log('ready'))",
    );
  });
  afterAll(async () => {
    for (const child of listeners) child.kill('SIGKILL');
    await exec('ip', ['netns', 'del', netns]).catch(() => undefined);
  });

  it("lists the namespace's addresses", async () => {
    const addresses = await netnsHostProbe(netns).localAddresses();
    expect(addresses).toEqual(expect.arrayContaining(['127.0.0.1', '192.0.2.77']));
  });

  it("sees the namespace's listening tcp and bound udp (IPv6) sockets", async () => {
    const probe = netnsHostProbe(netns);
    expect((await probe.listening('tcp')).has(47123)).toBe(true);
    expect((await probe.listening('udp')).has(47124)).toBe(true);
    expect((await probe.listening('tcp')).has(47124)).toBe(false);
  });

  it('fails as NETWORK_FAILED for a namespace that does not exist', async () => {
    const error = await netnsHostProbe(`${netns}-missing`)
      .localAddresses()
      .catch((e: unknown) => e);
    expect(VmManagerError.isInstance(error) && error.code).toBe('NETWORK_FAILED');
    const listening = await netnsHostProbe(`${netns}-missing`)
      .listening('tcp')
      .catch((e: unknown) => e);
    expect(VmManagerError.isInstance(listening) && listening.code).toBe('NETWORK_FAILED');
  });
});
