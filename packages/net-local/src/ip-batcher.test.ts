import { describe, expect, it } from 'vitest';
import { FakeHost } from '../test/fake-host.js';
import type { CommandResult, CommandRunner } from './command-runner.js';
import { HostCommands } from './host-commands.js';
import { IpBatcher, parseBatchOutcome } from './ip-batcher.js';

function scripted(respond: (input: string, call: number) => Partial<CommandResult>) {
  const inputs: string[] = [];
  const runner: CommandRunner = async (_file, _args, options) => {
    inputs.push(options?.input ?? '');
    return { exitCode: 0, stdout: '', stderr: '', ...respond(options?.input ?? '', inputs.length) };
  };
  return { inputs, batcher: new IpBatcher(new HostCommands({ runner, timeoutMs: 1000 })) };
}

describe('parseBatchOutcome', () => {
  it('attributes each error to the line named after it and maps read outputs around failed reads', () => {
    const parsed = parseBatchOutcome(
      {
        exitCode: 1,
        stdout: '[{"ifname":"a"}]\n[{"ifname":"c"}]\n',
        stderr:
          'Device "b" does not exist.\nCommand failed -:2\nRTNETLINK answers: File exists\nCommand failed -:4\n',
      },
      new Set([1, 2, 3]),
    );
    expect(parsed?.failures).toEqual(
      new Map([
        [2, 'Device "b" does not exist.'],
        [4, 'RTNETLINK answers: File exists'],
      ]),
    );
    expect(parsed?.outputs).toEqual(
      new Map([
        [1, [{ ifname: 'a' }]],
        [3, [{ ifname: 'c' }]],
      ]),
    );
  });

  it.each([
    [
      'ip stopped while parsing',
      { exitCode: 255, stdout: '', stderr: 'Error: argument "x" is wrong: Device does not exist\n' },
    ],
    ['an unattributed error', { exitCode: 1, stdout: '', stderr: 'Command failed -:1\nsomething else\n' }],
    ['missing read output', { exitCode: 0, stdout: '', stderr: '' }],
    ['output that is not JSON', { exitCode: 0, stdout: 'nope\n', stderr: '' }],
  ])('is undefined when the batch did not run to its end: %s', (_what, outcome) => {
    expect(parseBatchOutcome(outcome, new Set([1]))).toBeUndefined();
  });
});

describe('IpBatcher', () => {
  it('puts the lines of every job issued in one tick into one process, in order', async () => {
    const { inputs, batcher } = scripted(() => ({}));
    await Promise.all([
      batcher.run([{ text: 'link set dev a up' }]),
      batcher.run([{ text: 'link set dev b up' }]),
    ]);
    expect(inputs).toEqual(['link set dev a up\nlink set dev b up\n']);
  });

  it('shares identical reads in a wave, but never across a write', async () => {
    const { inputs, batcher } = scripted(() => ({ stdout: '[]\n[]\n' }));
    const read = { text: 'link show dev br0', read: true };
    await Promise.all([
      batcher.run([read]),
      batcher.run([read]),
      batcher.run([{ text: 'link set dev br0 up' }, read]),
    ]);
    expect(FakeHost.lines({ file: 'ip', args: [], input: inputs[0] })).toEqual([
      'link show dev br0',
      'link set dev br0 up',
      'link show dev br0',
    ]);
  });

  it('a job submitted while a batch runs goes into the next batch', async () => {
    const { inputs, batcher } = scripted(() => ({}));
    const first = batcher.run([{ text: 'link set dev a up' }]);
    await new Promise((resolve) => setImmediate(resolve));
    const second = batcher.run([{ text: 'link set dev b up' }]);
    await Promise.all([first, second]);
    expect(inputs).toEqual(['link set dev a up\n', 'link set dev b up\n']);
  });

  it('when ip stops early, runs each job again on its own so only the guilty one fails', async () => {
    const { inputs, batcher } = scripted((input) =>
      input.includes('master nobr')
        ? { exitCode: 255, stderr: 'Error: argument "nobr" is wrong: Device does not exist\n' }
        : {},
    );
    const results = await Promise.allSettled([
      batcher.run([{ text: 'link set dev a up' }]),
      batcher.run([{ text: 'link set dev b master nobr' }]),
      batcher.run([{ text: 'link set dev c up' }]),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason.code).toBe('NOT_FOUND');
    expect(inputs).toHaveLength(4);
  });

  it('fails every job at once for a whole-process cause', async () => {
    const { inputs, batcher } = scripted(() => ({
      exitCode: 255,
      stderr: 'Cannot open network namespace "x": Permission denied\n',
    }));
    const results = await Promise.allSettled([batcher.run([{ text: 'a' }]), batcher.run([{ text: 'b' }])]);
    for (const r of results) expect(r.status === 'rejected' && r.reason.code).toBe('BACKEND_UNAVAILABLE');
    expect(inputs).toHaveLength(1);
  });
});
