import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { kvmUnavailableReason, realVmmBinary } from '@my-hypervisor/chv-client/testing';
import { describe, expect, it } from 'vitest';
import { runCaptured } from '../test/capture-io.js';
import { tempDir } from '../test/temp-dir.js';
import { VERSION } from './version.js';

async function stateEnv(): Promise<Record<string, string>> {
  const dir = await tempDir('myhv-cli-run-');
  return { MYHV_STATE_DIR: join(dir, 'state'), MYHV_RUN_DIR: join(dir, 'run') };
}

describe('run: argv parsing and exit codes', () => {
  it('prints the version three ways', async () => {
    for (const argv of [['--version'], ['-V'], ['version']]) {
      const result = await runCaptured(argv);
      expect(result).toMatchObject({ code: 0, stdout: `myhv ${VERSION}\n` });
    }
    const json = await runCaptured(['version', '--json']);
    expect(JSON.parse(json.stdout)).toEqual({ name: 'myhv', version: VERSION, node: process.versions.node });
  });

  it('prints help with exit 0, for no arguments too', async () => {
    for (const argv of [[], ['--help'], ['vm', '--help'], ['help', 'vm']]) {
      const result = await runCaptured(argv);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/Usage: myhv/);
    }
  });

  it.each([
    [['nonsense'], /unknown command 'nonsense'/],
    [['vm', 'frobnicate'], /unknown command 'frobnicate'/],
    [['vm', 'start'], /missing required argument 'name'/],
    [['vm', 'ls', '--bogus'], /unknown option '--bogus'/],
    [['forward', 'add', 'web'], /missing required argument 'forward'/],
    [['vm'], /Usage: myhv vm/],
  ])('%j is a usage error (exit 2)', async (argv, message) => {
    const result = await runCaptured(argv);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe('');
  });

  it('reports usage errors as JSON on stderr with --json', async () => {
    const result = await runCaptured(['--json', 'vm', 'start']);
    expect(result.code).toBe(2);
    // Exactly one JSON line, nothing else.
    expect(JSON.parse(result.stderr)).toMatchObject({
      error: { code: 'USAGE', exitCode: 2, message: "missing required argument 'name'" },
    });
  });

  it('lists no VMs in an empty state directory, creating nothing', async () => {
    const env = await stateEnv();
    const human = await runCaptured(['vm', 'ls'], { env: { ...env, NO_COLOR: '1' }, isTTY: true });
    expect(human).toMatchObject({ code: 0, stdout: 'NAME   STATUS   IP   CPUS   MEMORY   FORWARDS\n' });
    const colored = await runCaptured(['vm', 'ls'], { env, isTTY: true });
    expect(colored.stdout).toBe('\x1b[1mNAME   STATUS   IP   CPUS   MEMORY   FORWARDS\x1b[22m\n');
    const piped = await runCaptured(['vm', 'ls'], { env });
    expect(piped.stdout).toBe('');
    const json = await runCaptured(['vm', 'ls', '--json'], { env });
    expect(JSON.parse(json.stdout)).toEqual({ vms: [], unreadable: [] });
    const forwards = await runCaptured(['--json', 'forward', 'ls'], { env });
    expect(JSON.parse(forwards.stdout)).toEqual({ forwards: [] });
    await expect(readdir(join(env.MYHV_STATE_DIR!, '..'))).resolves.toEqual([]);
  });

  it('NOT_FOUND exits 1 and names the VM; a hostile name exits 2 before any lookup', async () => {
    const env = await stateEnv();
    const missing = await runCaptured(['vm', 'inspect', 'nosuch'], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no VM named nosuch\n {2}hint: run `myhv vm ls`/);
    for (const name of ['../etc', 'a/b', '$(reboot)', 'x'.repeat(64), '-dash']) {
      const bad = await runCaptured(['--json', 'vm', 'inspect', '--', name], { env });
      expect(bad.code).toBe(2);
      expect(JSON.parse(bad.stderr)).toMatchObject({ error: { code: 'INVALID_ARGUMENT', field: 'name' } });
    }
  });

  it('applies flag > env > config file when choosing the state directory', async () => {
    const env = await stateEnv();
    const dir = await tempDir('myhv-cli-prec-');
    const config = join(dir, 'config.yaml');
    await writeFile(config, `stateDir: ${join(dir, 'from-file')}\n`);
    // An invalid value from the winning source proves which one was used.
    const fromFlag = await runCaptured(
      ['--json', '--config', config, '--state-dir', 'relative', 'vm', 'ls'],
      { env },
    );
    expect(JSON.parse(fromFlag.stderr).error.field).toBe('--state-dir');
    const fromEnv = await runCaptured(['--json', '--config', config, 'vm', 'ls'], {
      env: { ...env, MYHV_STATE_DIR: 'rel' },
    });
    expect(JSON.parse(fromEnv.stderr).error.field).toBe('MYHV_STATE_DIR');
    await writeFile(config, 'stateDir: relative\n');
    const fromFile = await runCaptured(['--json', 'vm', 'ls'], { env: { MYHV_CONFIG: config } });
    expect(JSON.parse(fromFile.stderr).error.field).toBe(`${config}: stateDir`);
  });

  it('rejects bad flags of vm create with exit 2, naming the flag and the fix', async () => {
    const env = await stateEnv();
    const cases: [string[], RegExp][] = [
      [['vm', 'create', 'a', '--kernel', '/k', '--memory', 'lots'], /memory: "lots" is not a size/],
      [['vm', 'create', 'a', '--kernel', '/k', '--cpus', '0'], /cpus: must be at least 1/],
      [
        ['vm', 'create', 'a', '--kernel', '/k', '-p', '70000:80'],
        /network\.forwards\[0\]\.hostPort: must be 1–65535/,
      ],
      [['vm', 'create', 'a', '--kernel', 'relative'], /kernel: must be an absolute path/],
      [['vm', 'create', 'a'], /--kernel: missing/],
      [['vm', 'create', 'a', '--kernel', '/k', '--no-network', '-p', '80:80'], /network\.enabled/],
      [
        ['vm', 'create', 'a', '--kernel', '/k', '--queues', '2'],
        /network\.queues: 2 queue pairs need at least as many vCPUs, but cpus is 1\n.*hint: .*at most --cpus/s,
      ],
    ];
    for (const [argv, message] of cases) {
      const result = await runCaptured(argv, { env });
      expect(result.code, argv.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).toMatch(/hint: /);
    }
  });

  it('refuses --follow with --json', async () => {
    const result = await runCaptured(['--json', 'vm', 'logs', 'web', '--follow'], { env: await stateEnv() });
    expect(result.code).toBe(2);
  });

  it('runs doctor with --json and reports every check', async () => {
    const result = await runCaptured(['--json', 'doctor'], {
      env: { ...(await stateEnv()), MYHV_CLOUD_HYPERVISOR: 'simulator' },
    });
    const report = JSON.parse(result.stdout) as {
      ok: boolean;
      checks: { id: string; ok: boolean; required: boolean }[];
    };
    expect(report.checks.map((c) => c.id)).toEqual(
      expect.arrayContaining([
        'root',
        'kvm',
        'vmm',
        'guest',
        'virtiofsd',
        'nat',
        'ip_forward',
        'bridge',
        'state-dir',
        'mosnet',
      ]),
    );
    expect(result.code).toBe(report.ok ? 0 : 1);
    expect(report.ok).toBe(report.checks.every((c) => c.ok || !c.required));
  });
});

// A host where /dev/kvm is missing but cloud-hypervisor is installed: doctor must not stop at "the binary runs".
const realOnDisk = realVmmBinary();
const noKvm = kvmUnavailableReason();
describe.skipIf(!realOnDisk || !noKvm)('doctor with the real VMM on a host without KVM', () => {
  it('fails the probe-guest boot check, naming KVM, and exits 1', async () => {
    const result = await runCaptured(['--json', 'doctor'], {
      env: { ...(await stateEnv()), MYHV_CLOUD_HYPERVISOR: realOnDisk! },
    });
    const report = JSON.parse(result.stdout) as {
      checks: { id: string; ok: boolean; required: boolean; detail: string }[];
    };
    const guest = report.checks.find((c) => c.id === 'guest');
    expect(guest).toMatchObject({ ok: false, required: true });
    expect(guest!.detail).toMatch(/no usable KVM/);
    expect(result.code).toBe(1);
  });
});
if (!realOnDisk || !noKvm)
  console.warn(
    `skipped: doctor's probe-guest check on a host without KVM, because ${realOnDisk ? 'this host has a usable /dev/kvm' : 'MYHV_CLOUD_HYPERVISOR is not set'}`,
  );
