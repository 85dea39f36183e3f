import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test/temp-dir.js';
import { billionLaughs } from '../test/yaml-bomb.js';
import { DEFAULT_CONFIG_FILE, parseYamlDocument, resolveConfig } from './config.js';
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
    [{ confinementUserfaultfd: 'yes' }, '--confinement-userfaultfd'],
    [{ vmmStandby: 'always' }, '--vmm-standby'],
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

  it('takes the namespace backend from a flag, MYHV_NET_BACKEND or the config file, with its NAT driver', async () => {
    const file = await configFile('netBackend: namespace\nnat: iptables\n');
    const fromFile = await resolveConfig({ flags: { config: file }, env: {} });
    expect(fromFile).toMatchObject({ netBackend: 'namespace', nat: 'iptables' });
    expect(fromFile.sources.netBackend).toBe('config');
    const fromEnv = await resolveConfig({ flags: {}, env: { MYHV_NET_BACKEND: 'namespace' } });
    expect(fromEnv.netBackend).toBe('namespace');
    // --nat drives the namespace backend's forwards (LocalOps), so it is no usage error there.
    const fromFlag = await resolveConfig({ flags: { netBackend: 'namespace', nat: 'iptables' }, env: {} });
    expect(fromFlag).toMatchObject({ netBackend: 'namespace', nat: 'iptables' });
    expect(fromFlag.sources.netBackend).toBe('flag');
  });

  it('refuses an unknown --net-backend, naming where it came from', async () => {
    const flag = await rejection(resolveConfig({ flags: { netBackend: 'netns' }, env: {} }));
    expect(flag.code).toBe('INVALID_ARGUMENT');
    expect(flag.details.field).toBe('--net-backend');
    const env = await rejection(resolveConfig({ flags: {}, env: { MYHV_NET_BACKEND: 'Namespace' } }));
    expect(env.details.field).toBe('MYHV_NET_BACKEND');
  });

  it('refuses --nat with --net-backend mosnet as a usage error', async () => {
    const error = await rejection(
      resolveConfig({ flags: { nat: 'iptables', netBackend: 'mosnet' }, env: {} }),
    );
    expect(error.code).toBe('USAGE');
  });

  it('reads allowedVmmBinaries from the config file: a list, or one comma-separated string', async () => {
    const list = await configFile('allowedVmmBinaries:\n  - /opt/ch/cloud-hypervisor\n  - /usr/bin/ch2\n');
    expect((await resolveConfig({ flags: { config: list }, env: {} })).allowedVmmBinaries).toEqual([
      '/opt/ch/cloud-hypervisor',
      '/usr/bin/ch2',
    ]);
    const text = await configFile('allowedVmmBinaries: "/opt/ch/cloud-hypervisor, /usr/bin/ch2"\n');
    expect((await resolveConfig({ flags: { config: text }, env: {} })).allowedVmmBinaries).toEqual([
      '/opt/ch/cloud-hypervisor',
      '/usr/bin/ch2',
    ]);
    for (const bad of ['allowedVmmBinaries: [relative/ch]\n', 'allowedVmmBinaries: [1]\n']) {
      const file = await configFile(bad);
      expect(await rejection(resolveConfig({ flags: { config: file }, env: {} }))).toMatchObject({
        code: 'INVALID_ARGUMENT',
        details: { field: `${file}: allowedVmmBinaries` },
      });
    }
  });

  it('confinement userfaultfd is off unless a flag, MYHV_CONFINEMENT_USERFAULTFD or the config file turns it on', async () => {
    expect((await resolveConfig({ flags: {}, env: {} })).confinementUserfaultfd).toBe('off');
    expect(
      (await resolveConfig({ flags: {}, env: { MYHV_CONFINEMENT_USERFAULTFD: 'on' } }))
        .confinementUserfaultfd,
    ).toBe('on');
    const file = await configFile('confinementUserfaultfd: "on"\n');
    expect((await resolveConfig({ flags: { config: file }, env: {} })).confinementUserfaultfd).toBe('on');
  });

  it('standby VMMs are off unless a flag, MYHV_VMM_STANDBY or the config file turns them on', async () => {
    expect((await resolveConfig({ flags: {}, env: {} })).vmmStandby).toBe('off');
    expect((await resolveConfig({ flags: {}, env: { MYHV_VMM_STANDBY: 'on' } })).vmmStandby).toBe('on');
    const file = await configFile('vmmStandby: "on"\n');
    expect((await resolveConfig({ flags: { config: file }, env: {} })).vmmStandby).toBe('on');
    expect((await resolveConfig({ flags: { config: file, vmmStandby: 'off' }, env: {} })).vmmStandby).toBe(
      'off',
    );
  });

  it('accepts "simulator" as the VMM binary', async () => {
    const config = await resolveConfig({ flags: {}, env: { MYHV_CLOUD_HYPERVISOR: 'simulator' } });
    expect(config.vmmBinary).toBe('simulator');
    expect(config.sources.vmmBinary).toBe('env');
  });

  it('refuses a config file that is an alias bomb or over 1 MiB, naming it', async () => {
    const bomb = await configFile(billionLaughs(10, 'stateDir'));
    const started = performance.now();
    const error = await rejection(resolveConfig({ flags: { config: bomb }, env: {} }));
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: `config ${bomb}` } });
    // Valid YAML (a comment and one setting), only too big.
    const big = await configFile(`#${'x'.repeat(1024 * 1024)}\nstateDir: /x\n`);
    expect(await rejection(resolveConfig({ flags: {}, env: { MYHV_CONFIG: big } }))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: { field: `config ${big}` },
    });
    // /dev/zero reports size 0: only a bounded read stops.
    expect(await rejection(resolveConfig({ flags: { config: '/dev/zero' }, env: {} }))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: { field: 'config /dev/zero' },
    });
  });
});

describe('parseYamlDocument: nesting a parser would choke on is refused first', () => {
  const deep: [string, string][] = [
    ['flow sequences', '['.repeat(20_000)],
    ['flow mappings', '{a: '.repeat(20_000)],
    ['block sequences on one line', `${'- '.repeat(20_000)}x`],
    [
      'block mappings by indentation',
      Array.from({ length: 2_000 }, (_, i) => `${' '.repeat(i)}a:`).join('\n'),
    ],
    ['brackets after a stray apostrophe', `cmdline: don't\nx: ${'['.repeat(20_000)}`],
  ];
  for (const [what, text] of deep) {
    it(`${what}: INVALID_ARGUMENT naming the file, at once`, async () => {
      const started = performance.now();
      const error = await parseYamlDocument(text, '--file deep.yaml').catch((e: unknown) => e);
      expect(performance.now() - started).toBeLessThan(1_000);
      expect(error).toBeInstanceOf(CliError);
      expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: '--file deep.yaml' } });
      expect((error as Error).message).toMatch(/nests deeper than 64 levels/);
    });
  }

  it('ordinary specs with brackets, quotes and comments in values still parse', async () => {
    const text = [
      'name: web # the [main] one',
      'cmdline: "console=ttyS0 [quiet] \\"x\\""',
      "note: don't [panic]",
      'disks: [{ path: /a }, { path: /b }]',
      'network:',
      '  forwards:',
      '    - { hostPort: 8080, guestPort: 80 }',
    ].join('\n');
    expect(await parseYamlDocument(text, 'spec')).toEqual({
      name: 'web',
      cmdline: 'console=ttyS0 [quiet] "x"',
      note: "don't [panic]",
      disks: [{ path: '/a' }, { path: '/b' }],
      network: { forwards: [{ hostPort: 8080, guestPort: 80 }] },
    });
  });
});
