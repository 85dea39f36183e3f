import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test/temp-dir.js';
import { DEFAULT_CONFIG_FILE, resolveConfig } from './config.js';
import { CliError } from './errors.js';

async function configFile(text: string): Promise<string> {
  const dir = await tempDir('myhv-cli-config-');
  const file = join(dir, 'config.yaml');
  await writeFile(file, text);
  return file;
}

async function rejection(promise: Promise<unknown>): Promise<CliError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(CliError.isInstance(error)).toBe(true);
  return error as CliError;
}

const hostConfig = existsSync(DEFAULT_CONFIG_FILE);
if (hostConfig)
  console.warn(`skipped: the defaults test, because ${DEFAULT_CONFIG_FILE} exists on this host`);

describe('resolveConfig', () => {
  it.skipIf(hostConfig)('uses the documented defaults when nothing is set', async () => {
    const config = await resolveConfig({ flags: {}, env: {} });
    expect(config).toMatchObject({
      stateDir: '/var/lib/myhv',
      runDir: '/run/myhv',
      netBackend: 'local',
      nat: 'nft',
      mosnetSocket: '/var/run/mosnet.sock',
      bridge: 'myhvbr0',
      subnet: '10.62.0.0/24',
    });
    expect(config.netns).toBeUndefined();
    expect(config.vmmBinary).toBeUndefined();
    expect(config.sources.stateDir).toBe('default');
    expect(config.sources.netns).toBe('unset');
  });

  it('applies flag > environment > config file > default, per setting', async () => {
    const file = await configFile(
      'stateDir: /from/file\nrunDir: /run/file\nbridge: filebr0\nsubnet: 10.9.0.0/24\n',
    );
    const config = await resolveConfig({
      flags: { config: file, stateDir: '/from/flag' },
      env: { MYHV_STATE_DIR: '/from/env', MYHV_RUN_DIR: '/run/env', MYHV_BRIDGE: '' },
    });
    expect(config.stateDir).toBe('/from/flag');
    expect(config.runDir).toBe('/run/env');
    // An empty variable counts as unset, so the file wins.
    expect(config.bridge).toBe('filebr0');
    expect(config.subnet).toBe('10.9.0.0/24');
    expect(config.nat).toBe('nft');
    expect(config.sources).toMatchObject({
      stateDir: 'flag',
      runDir: 'env',
      bridge: 'config',
      subnet: 'config',
      nat: 'default',
    });
    expect(config.configFile).toBe(file);
  });

  it('reads the config file named by MYHV_CONFIG', async () => {
    const file = await configFile('{"netBackend": "mosnet", "mosnetSocket": "/tmp/m.sock"}');
    const config = await resolveConfig({ flags: {}, env: { MYHV_CONFIG: file } });
    expect(config.netBackend).toBe('mosnet');
    expect(config.mosnetSocket).toBe('/tmp/m.sock');
  });

  it('names the flag, variable or config key of an invalid value', async () => {
    expect(
      (await rejection(resolveConfig({ flags: { subnet: '10.0.0.0/33' }, env: {} }))).details.field,
    ).toBe('--subnet');
    expect((await rejection(resolveConfig({ flags: {}, env: { MYHV_SUBNET: 'nope' } }))).details.field).toBe(
      'MYHV_SUBNET',
    );
    const file = await configFile('bridge: "this-name-is-far-too-long"\n');
    const fromFile = await rejection(resolveConfig({ flags: { config: file }, env: {} }));
    expect(fromFile.code).toBe('INVALID_ARGUMENT');
    expect(fromFile.details.field).toBe(`${file}: bridge`);
    expect(fromFile.details.hint).toBeTruthy();
  });

  it.each([
    [{ stateDir: 'relative/dir' }, '--state-dir'],
    [{ runDir: '/a/very/long/run/directory/that/breaks/socket/paths' }, '--run-dir'],
    [{ netBackend: 'bogus' }, '--net-backend'],
    [{ nat: 'pf' }, '--nat'],
    [{ netns: '../escape' }, '--netns'],
    [{ bridge: 'br;rm' }, '--bridge'],
    [{ vmmBinary: 'relative' }, '--vmm-binary'],
  ])('rejects %o', async (flags, field) => {
    const error = await rejection(resolveConfig({ flags, env: {} }));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.details.field).toBe(field);
  });

  it('rejects config files with unknown keys, non-strings, bad YAML, or that are missing', async () => {
    for (const text of ['stateDirectory: /x\n', 'subnet: 24\n', 'bridge: [a\n', '- a list\n']) {
      const file = await configFile(text);
      expect((await rejection(resolveConfig({ flags: { config: file }, env: {} }))).code).toBe(
        'INVALID_ARGUMENT',
      );
    }
    const missing = await rejection(
      resolveConfig({ flags: { config: '/nonexistent/config.yaml' }, env: {} }),
    );
    expect(missing.details.field).toBe('--config');
  });

  it('refuses --nat with --net-backend mosnet as a usage error', async () => {
    const error = await rejection(
      resolveConfig({ flags: { nat: 'iptables', netBackend: 'mosnet' }, env: {} }),
    );
    expect(error.code).toBe('USAGE');
  });

  it('accepts "simulator" as the VMM binary', async () => {
    const config = await resolveConfig({ flags: {}, env: { MYHV_CLOUD_HYPERVISOR: 'simulator' } });
    expect(config.vmmBinary).toBe('simulator');
    expect(config.sources.vmmBinary).toBe('env');
  });
});
