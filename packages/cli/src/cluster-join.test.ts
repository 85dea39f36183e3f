import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCaptured } from '../test/capture-io.js';
import { refusal } from '../test/refusal.js';
import { tempDir } from '../test/temp-dir.js';
import { clusterJoinOptions } from './cluster-join.js';
import type { CliConfig } from './config.js';
import { exitCodeFor } from './describe-error.js';

// `daemon run --cluster`'s own flags, checked before anything connects: what is taken, and refusals naming the flag.
async function clusterConfig(): Promise<CliConfig> {
  const dir = await tempDir('myhv-cli-cluster-join-');
  return { cluster: ['http://127.0.0.1:1'], stateDir: join(dir, 'state') } as unknown as CliConfig;
}

describe('daemon run --host-id', () => {
  it.each([['h0'], ['node-a.example'], ['a'.repeat(63)]])('takes %j', async (id) => {
    expect(clusterJoinOptions(await clusterConfig(), { hostId: id })?.host.id).toBe(id);
  });

  it.each([['no spaces'], ['-a'], [''], ['a'.repeat(64)], ['a/b']])(
    'refuses %j naming --host-id, exit 2',
    async (id) => {
      const config = await clusterConfig();
      const error = refusal(() => clusterJoinOptions(config, { hostId: id }));
      expect(error.code).toBe('INVALID_ARGUMENT');
      expect(error.details).toEqual({ field: '--host-id' });
      expect(error.message).toBe(
        `--host-id: ${JSON.stringify(id)} is not a host id: 1–63 letters, digits, '.', '_', '-', starting with a letter or digit`,
      );
      expect(exitCodeFor(error)).toBe(2);
    },
  );
});

describe('daemon run --host-label', () => {
  it('becomes the host labels, an empty value allowed, the last of a repeated key winning', async () => {
    const join = clusterJoinOptions(await clusterConfig(), {
      hostId: 'h0',
      hostLabel: ['zone=a', 'example.com/tier=Front-1', 'gpu=', 'zone=b'],
    });
    expect(join?.host.labels).toEqual({ zone: 'b', 'example.com/tier': 'Front-1', gpu: '' });
  });

  it.each([['zone'], ['=a'], ['Zone=a'], ['zone=a b'], ['zone=a=b']])(
    'refuses %j naming --host-label, exit 2',
    async (label) => {
      const config = await clusterConfig();
      const error = refusal(() => clusterJoinOptions(config, { hostId: 'h0', hostLabel: [label] }));
      expect(error.details).toEqual({ field: '--host-label', hint: 'e.g. zone=a' });
      expect(error.message).toBe(`--host-label: ${JSON.stringify(label)} is not key=value`);
      expect(exitCodeFor(error)).toBe(2);
    },
  );
});

describe('vm create --cluster --on-host', () => {
  it.each([['novalue'], ['=a']])('refuses %j naming --on-host, exit 2, before connecting', async (label) => {
    const dir = await tempDir('myhv-cli-on-host-');
    const result = await runCaptured(
      [
        '--json',
        '--cluster',
        'etcd=http://127.0.0.1:1',
        'vm',
        'create',
        'x',
        '--kernel',
        '/k',
        '--on-host',
        label,
      ],
      { env: { MYHV_STATE_DIR: join(dir, 'state'), MYHV_RUN_DIR: join(dir, 'run') } },
    );
    expect(result.code, result.stderr).toBe(2);
    expect(JSON.parse(result.stderr)).toMatchObject({
      error: {
        code: 'INVALID_ARGUMENT',
        field: '--on-host',
        message: `--on-host: ${JSON.stringify(label)} is not key=value`,
      },
    });
  });
});
