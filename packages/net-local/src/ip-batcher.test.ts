import { describe, expect, it } from 'vitest';
import { FakeHost } from '../test/fake-host.js';
import type { CommandResult, CommandRunner } from './command-runner.js';
import { HostCommands } from './host-commands.js';
import { IpBatcher, type IpLine, parseBatchOutcome } from './ip-batcher.js';

function scripted(respond: (input: string, call: number) => Partial<CommandResult>) {
  const inputs: string[] = [];
  const runner: CommandRunner = async (_file, _args, options) => {
    inputs.push(options?.input ?? '');
    return { exitCode: 0, stdout: '', stderr: '', ...respond(options?.input ?? '', inputs.length) };
  };
  return { inputs, batcher: new IpBatcher(new HostCommands({ runner, timeoutMs: 1000 })) };
}

/**
 * A pretend `ip -force -batch -` that counts each line it reaches: `show` prints a document, a device named `gone`
 * is an attributed error, and `master no…` or an unknown verb ends the batch as ip does when parsing fails.
 */
function fakeIp() {
  const counts = new Map<string, number>();
  const { inputs, batcher } = scripted((input) => {
    let stdout = '';
    let stderr = '';
    for (const [i, line] of input.split('\n').filter(Boolean).entries()) {
      counts.set(line, (counts.get(line) ?? 0) + 1);
      const master = / master (no\S*)/.exec(line)?.[1];
      if (master !== undefined)
        return {
          exitCode: 255,
          stdout,
          stderr: `${stderr}Error: argument "${master}" is wrong: Device does not exist\n`,
        };
      if (line.includes('frob'))
        return { exitCode: 255, stdout, stderr: `${stderr}Command "frob" is unknown, try "ip link help".\n` };
      if (line.includes(' gone')) stderr += `Cannot find device "gone"\nCommand failed -:${i + 1}\n`;
      else if (line.includes(' show ')) stdout += `${JSON.stringify([{ ifname: line.split(' ').at(-1) }])}\n`;
    }
    return { exitCode: stderr === '' ? 0 : 1, stdout, stderr };
  });
  return { inputs, batcher, reached: (line: IpLine) => counts.get(line.text) ?? 0 };
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
      ['link show dev a', 'link show dev b', 'link show dev c', 'link add c type bridge'],
      new Set([1, 2, 3]),
    );
    expect(parsed.failures).toEqual(
      new Map([
        [2, 'Device "b" does not exist.'],
        [4, 'RTNETLINK answers: File exists'],
      ]),
    );
    expect(parsed.outputs).toEqual(
      new Map([
        [1, [{ ifname: 'a' }]],
        [3, [{ ifname: 'c' }]],
      ]),
    );
    expect(parsed.ran).toBe(4);
    expect(parsed.stop).toBeUndefined();
  });

  it.each([
    [
      'ip stopped while parsing',
      { exitCode: 255, stdout: '', stderr: 'Error: argument "x" is wrong: Device does not exist\n' },
    ],
    ['an unattributed error', { exitCode: 1, stdout: '', stderr: 'Command failed -:1\nsomething else\n' }],
    ['missing read output', { exitCode: 0, stdout: '', stderr: '' }],
    ['output that is not JSON', { exitCode: 0, stdout: 'nope\n', stderr: '' }],
  ])('reports a stop when the batch did not run to its end: %s', (_what, outcome) => {
    expect(
      parseBatchOutcome(outcome, ['link show dev x', 'link set dev y up'], new Set([1])).stop,
    ).toBeDefined();
  });

  const stoppedAtNobr = {
    exitCode: 255,
    stdout: '[{"ifname":"a"}]\n',
    stderr: 'Error: argument "nobr" is wrong: Device does not exist\n',
  };

  it('names the line whose argument ip rejected as the stopping line; the lines before it ran', () => {
    const script = [
      'link set dev a up',
      'link show dev a',
      'link set dev b master nobr',
      'link set dev c up',
    ];
    const parsed = parseBatchOutcome(stoppedAtNobr, script, new Set([2]));
    expect(parsed.ran).toBe(2);
    expect(parsed.stop).toEqual({ text: 'Error: argument "nobr" is wrong: Device does not exist', line: 3 });
  });

  it('names no stopping line when two lines not yet run quote the argument, nor when ip quotes none', () => {
    const script = [
      'link show dev a',
      'link set dev b up',
      'link set dev b master nobr',
      'link set dev c master nobr',
    ];
    const twice = parseBatchOutcome(stoppedAtNobr, script, new Set([1]));
    expect(twice.ran).toBe(2);
    expect(twice.stop?.line).toBeUndefined();
    const unquoted = parseBatchOutcome(
      { ...stoppedAtNobr, stderr: 'Command line is not complete.\n' },
      script,
      new Set([1]),
    );
    expect(unquoted.ran).toBe(1);
    expect(unquoted.stop?.line).toBeUndefined();
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

  it.each([0, 2, 4])(
    'when job %i of 5 stops ip mid-job, earlier lines ran once, that job fails, the later jobs run in one new batch',
    async (k) => {
      const { inputs, reached, batcher } = fakeIp();
      const job = (i: number): IpLine[] =>
        i === k
          ? [
              { text: `link set dev t${i} up` },
              { text: `link set dev t${i} master nobr` },
              { text: `link set dev t${i} mtu 1400` },
            ]
          : [{ text: `link show dev t${i}`, read: true }, { text: `link set dev t${i} up` }];
      const jobs = [0, 1, 2, 3, 4].map(job);
      const results = await Promise.allSettled(jobs.map((lines) => batcher.run(lines)));

      expect(results.map((r) => r.status)).toEqual(jobs.map((_, i) => (i === k ? 'rejected' : 'fulfilled')));
      expect((results[k] as PromiseRejectedResult).reason.code).toBe('NOT_FOUND');
      for (const [i, r] of results.entries()) {
        if (i !== k)
          expect(r).toEqual({
            status: 'fulfilled',
            value: [{ ok: true, output: [{ ifname: `t${i}` }] }, { ok: true }],
          });
      }
      const [before, failing, after] = jobs[k]!;
      expect(reached(before!)).toBe(1);
      expect(reached(failing!)).toBe(1);
      expect(reached(after!)).toBe(0);
      for (const lines of jobs.filter((_, i) => i !== k))
        for (const line of lines) expect(reached(line)).toBe(1);
      const later = jobs
        .slice(k + 1)
        .flat()
        .map((l) => `${l.text}\n`);
      expect(inputs.slice(1)).toEqual(later.length > 0 ? [later.join('')] : []);
    },
  );

  it('when the stopping line cannot be told, keeps what is known to have run and runs each other job alone', async () => {
    const { inputs, reached, batcher } = fakeIp();
    const read = { text: 'link show dev a', read: true };
    const results = await Promise.allSettled([
      batcher.run([{ text: 'link set dev gone up' }]),
      batcher.run([read, { text: 'link set dev a up' }]),
      batcher.run([{ text: 'link frob' }]),
      batcher.run([{ text: 'link set dev d up' }]),
    ]);
    const [gone, a, frob, d] = results;
    expect(gone.status === 'fulfilled' && gone.value[0]?.ok === false && gone.value[0].error.code).toBe(
      'NOT_FOUND',
    );
    expect(a).toEqual({
      status: 'fulfilled',
      value: [{ ok: true, output: [{ ifname: 'a' }] }, { ok: true }],
    });
    expect(frob.status === 'rejected' && frob.reason.code).toBe('BACKEND_FAILURE');
    expect(d.status).toBe('fulfilled');
    // The failure printed before the stop and the read's output prove those two lines ran.
    expect(reached({ text: 'link set dev gone up' })).toBe(1);
    expect(reached(read)).toBe(1);
    expect(inputs.slice(1)).toEqual(['link set dev a up\n', 'link frob\n', 'link set dev d up\n']);
  });

  it('when the rejected argument is in two lines, those before the first ran and the suspects run alone', async () => {
    const { inputs, reached, batcher } = fakeIp();
    const results = await Promise.allSettled([
      batcher.run([{ text: 'link set dev a up' }]),
      batcher.run([{ text: 'link set dev b master nobr' }]),
      batcher.run([{ text: 'link set dev c master nobr' }]),
    ]);
    expect(results.map((r) => r.status === 'rejected' && r.reason.code)).toEqual([
      false,
      'NOT_FOUND',
      'NOT_FOUND',
    ]);
    expect(reached({ text: 'link set dev a up' })).toBe(1);
    expect(inputs.slice(1)).toEqual(['link set dev b master nobr\n', 'link set dev c master nobr\n']);
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
