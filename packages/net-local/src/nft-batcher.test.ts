import { describe, expect, it } from 'vitest';
import type { CommandResult, CommandRunner } from './command-runner.js';
import { HostCommands } from './host-commands.js';
import { NftBatcher, parseNftErrors } from './nft-batcher.js';

function scripted(respond: (lines: string[]) => Partial<CommandResult>) {
  const scripts: string[][] = [];
  const runner: CommandRunner = async (_file, _args, options) => {
    const lines = (options?.input ?? '').split('\n').filter((l) => l !== '');
    scripts.push(lines);
    return { exitCode: 0, stdout: '', stderr: '', ...respond(lines) };
  };
  const batcher = new NftBatcher(new HostCommands({ runner, timeoutMs: 1000 }), () => ['S1', 'S2']);
  return { scripts, batcher };
}

const error = (line: number, text: string) => `/dev/stdin:${line}:1-10: Error: ${text}\nsome line\n^^^^\n`;

describe('parseNftErrors', () => {
  it('reads line numbers and messages, and skips errors nft could not place', () => {
    expect(
      parseNftErrors(`internal:0:0-0: Error: oops\n${error(3, 'Could not process rule: File exists')}`),
    ).toEqual([{ line: 3, text: 'Could not process rule: File exists' }]);
  });
});

describe('NftBatcher', () => {
  it('puts the structure in front of the first transaction only, unless a job asks for it', async () => {
    const { scripts, batcher } = scripted(() => ({}));
    await Promise.all([batcher.run(['A'], 'if-not-applied'), batcher.run(['B'], 'if-not-applied')]);
    await batcher.run(['C'], 'if-not-applied');
    await batcher.run(['D'], 'always');
    expect(scripts).toEqual([['S1', 'S2', 'A', 'B'], ['C'], ['S1', 'S2', 'D']]);
  });

  it('fails only the job whose line nft named, and commits the others in a second transaction', async () => {
    const { scripts, batcher } = scripted((lines) =>
      lines.includes('B2')
        ? { exitCode: 1, stderr: error(lines.indexOf('B2') + 1, 'Could not process rule: File exists') }
        : {},
    );
    const results = await Promise.allSettled([
      batcher.run(['A'], 'if-not-applied'),
      batcher.run(['B1', 'B2'], 'if-not-applied'),
      batcher.run(['C'], 'if-not-applied'),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const failure = (results[1] as PromiseRejectedResult).reason;
    expect(failure.code).toBe('ALREADY_EXISTS');
    expect(failure.details.line).toBe(5);
    expect(scripts).toEqual([
      ['S1', 'S2', 'A', 'B1', 'B2', 'C'],
      ['S1', 'S2', 'A', 'C'],
    ]);
  });

  it('an error in the structure, or one without a line, fails everyone', async () => {
    const structure = scripted(() => ({ exitCode: 1, stderr: error(2, 'syntax error') }));
    const a = await Promise.allSettled([
      structure.batcher.run(['A'], 'always'),
      structure.batcher.run(['B'], 'always'),
    ]);
    expect(a.map((r) => r.status === 'rejected' && r.reason.code)).toEqual([
      'BACKEND_FAILURE',
      'BACKEND_FAILURE',
    ]);

    const unplaced = scripted(() => ({
      exitCode: 1,
      stderr: 'Error: Could not process rule: Operation not permitted\n',
    }));
    const b = await Promise.allSettled([unplaced.batcher.run(['A'], 'always')]);
    expect(b[0]!.status === 'rejected' && b[0].reason.code).toBe('PERMISSION_DENIED');
    expect(unplaced.scripts).toHaveLength(1);
  });
});
