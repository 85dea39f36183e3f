import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import type { CommandRunner } from '../../src/command-runner.js';
import { execaRunner } from '../../src/command-runner.js';
import { HostCommands } from '../../src/host-commands.js';
import { IpBatcher } from '../../src/ip-batcher.js';
import { createNetns, deleteAllNetns, kernelSkipReason } from './netns.js';

/** The batcher against the real `ip`, whose early exit names no line: what the fake in the unit tests mimics. */
const reason = await kernelSkipReason([]);
if (reason) console.warn(`skipped: IpBatcher kernel tests because ${reason}`);

afterAll(deleteAllNetns);

describe.skipIf(reason !== undefined)('IpBatcher on the kernel', () => {
  it('when a line stops ip, earlier jobs are not run again, its job fails, and later jobs still run', async () => {
    const netns = await createNetns();
    const inputs: string[] = [];
    const runner: CommandRunner = (file, args, options) => {
      inputs.push(options?.input ?? '');
      return execaRunner(file, args, options);
    };
    const batcher = new IpBatcher(new HostCommands({ netns, runner, timeoutMs: 10_000 }));
    const results = await Promise.allSettled([
      batcher.run([{ text: 'link add br0 type bridge' }, { text: 'link show dev br0', read: true }]),
      batcher.run([
        { text: 'link add br1 type bridge' },
        { text: 'link set dev br1 master nobr' },
        { text: 'link set dev br1 up' },
      ]),
      batcher.run([{ text: 'link add br2 type bridge' }]),
    ]);

    // Run a second time, `link add br0` would have answered "File exists".
    expect(results[0]).toMatchObject({
      status: 'fulfilled',
      value: [{ ok: true }, { ok: true, output: [{ ifname: 'br0' }] }],
    });
    expect(results[1].status === 'rejected' && results[1].reason.code).toBe('NOT_FOUND');
    expect(results[2]).toEqual({ status: 'fulfilled', value: [{ ok: true }] });
    expect(inputs).toEqual([
      'link add br0 type bridge\nlink show dev br0\nlink add br1 type bridge\nlink set dev br1 master nobr\nlink set dev br1 up\nlink add br2 type bridge\n',
      'link add br2 type bridge\n',
    ]);
    const links = JSON.parse((await execa('ip', ['-n', netns, '-json', 'link', 'show'])).stdout) as {
      ifname: string;
      flags: string[];
    }[];
    expect(links.map((l) => l.ifname).sort()).toEqual(['br0', 'br1', 'br2', 'lo']);
    // The line after the stop in the failed job never ran.
    expect(links.find((l) => l.ifname === 'br1')?.flags).not.toContain('UP');
  });
});
