import { existsSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VmManagerError } from '@my-hypervisor/vm-manager';
import { describe, expect, it } from 'vitest';
import { runCaptured } from '../test/capture-io.js';
import { tempDir } from '../test/temp-dir.js';
import type { CliConfig } from './config.js';
import { CliError } from './errors.js';
import { assertVmmWorks, chooseVmm, describeVmm, findVmm, withVmmHint } from './vmm-choice.js';

const simulator = { command: '/usr/bin/node', args: ['/app/myhv.js', '__chv-simulator'] };
const sources = (vmmBinary: CliConfig['sources']['vmmBinary']) => ({ vmmBinary }) as CliConfig['sources'];

async function fakeVmm(): Promise<{ dir: string; path: string }> {
  const dir = await tempDir('myhv-cli-vmm-');
  const path = join(dir, 'cloud-hypervisor');
  await writeFile(path, '#!/bin/sh\necho cloud-hypervisor v99.0\n');
  await chmod(path, 0o755);
  return { dir, path };
}

describe('chooseVmm', () => {
  it('fails with VMM_NOT_FOUND when nothing is configured and nothing is on PATH, saying how to get one', () => {
    const nothing = { sources: sources('unset') };
    const error = (() => {
      try {
        return chooseVmm(nothing, { PATH: '/nonexistent' }, simulator);
      } catch (e) {
        return e;
      }
    })();
    expect(CliError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ code: 'VMM_NOT_FOUND', details: { field: '--vmm-binary' } });
    const { hint } = (error as CliError).details;
    expect(hint).toMatch(/install Cloud Hypervisor/);
    expect(hint).toMatch(/--vmm-binary simulator/);
    expect(findVmm(nothing, { PATH: '/nonexistent' }, simulator)).toBeUndefined();
  });

  it('falls back to the simulator only when asked to (myhv demo), and says so', () => {
    const choice = chooseVmm({ sources: sources('unset') }, { PATH: '/nonexistent' }, simulator, {
      fallbackToSimulator: true,
    });
    expect(choice).toMatchObject({
      kind: 'simulator',
      source: 'fallback',
      path: null,
      command: '/usr/bin/node',
    });
    expect(choice.commandArgs).toEqual(['/app/myhv.js', '__chv-simulator']);
    expect(describeVmm(choice)).toMatch(/simulator \(a fallback: no cloud-hypervisor on PATH/);
  });

  it('finds cloud-hypervisor on PATH', async () => {
    const { dir, path } = await fakeVmm();
    const choice = chooseVmm({ sources: sources('unset') }, { PATH: `/nonexistent:${dir}` }, simulator);
    expect(choice).toMatchObject({
      kind: 'cloud-hypervisor',
      source: 'path',
      path,
      command: path,
      commandArgs: [],
    });
  });

  it('prefers the configured binary, or the simulator when configured so', async () => {
    const { dir, path } = await fakeVmm();
    expect(chooseVmm({ vmmBinary: path, sources: sources('flag') }, { PATH: '' }, simulator)).toMatchObject({
      kind: 'cloud-hypervisor',
      source: 'flag',
    });
    expect(
      chooseVmm({ vmmBinary: 'simulator', sources: sources('env') }, { PATH: dir }, simulator),
    ).toMatchObject({
      kind: 'simulator',
      source: 'env',
    });
  });

  it('rejects a configured binary that is not an executable file', async () => {
    expect(() => chooseVmm({ vmmBinary: '/nonexistent/ch', sources: sources('env') }, {}, simulator)).toThrow(
      CliError,
    );
    const { path } = await fakeVmm();
    await chmod(path, 0o644);
    try {
      chooseVmm({ vmmBinary: path, sources: sources('flag') }, {}, simulator);
      expect.unreachable();
    } catch (error) {
      expect((error as CliError).details.field).toBe('--vmm-binary');
    }
  });
});

describe('a VMM that is not cloud-hypervisor', () => {
  it('is named by the setting that chose it, with the fix', async () => {
    const { dir, path } = await fakeVmm();
    await writeFile(path, '#!/bin/sh\necho hello\n');
    const fromPath = chooseVmm({ sources: sources('unset') }, { PATH: dir }, simulator);
    const error = await assertVmmWorks(fromPath).catch((e: unknown) => e);
    expect(CliError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'PATH' } });
    expect((error as CliError).message).toBe(
      `PATH: ${path} is not cloud-hypervisor: \`--version\` printed "hello" (expected "cloud-hypervisor vX.Y.Z")`,
    );
    expect((error as CliError).details.hint).toMatch(/install Cloud Hypervisor/);

    const fromFlag = chooseVmm({ vmmBinary: path, sources: sources('flag') }, {}, simulator);
    const flagged = withVmmHint(
      new VmManagerError('INVALID_ARGUMENT', `options.vmm.command: ${path} is not executable (mode 644)`, {
        details: { field: 'options.vmm.command' },
      }),
      fromFlag,
    ) as CliError;
    expect(flagged.message).toBe(`--vmm-binary: ${path} is not executable (mode 644)`);
    expect(flagged.details).toMatchObject({
      field: '--vmm-binary',
      hint: expect.stringMatching(/simulator/),
    });
    // Spec fields and other errors pass through.
    const spec = new VmManagerError('INVALID_ARGUMENT', 'vmm.binary: x', {
      details: { field: 'vmm.binary' },
    });
    expect(withVmmHint(spec, fromFlag)).toBe(spec);
  });

  it('passes when the VMM answers like cloud-hypervisor', async () => {
    const { path } = await fakeVmm();
    await assertVmmWorks(chooseVmm({ vmmBinary: path, sources: sources('flag') }, {}, simulator));
  });
});

describe('commands on a host without a VMM (nothing configured, none on PATH)', () => {
  async function host(): Promise<{ env: Record<string, string>; stateDir: string; kernel: string }> {
    const dir = await tempDir('myhv-cli-novmm-');
    const kernel = join(dir, 'vmlinux');
    await writeFile(kernel, 'not booted: the VMM check comes first');
    const stateDir = join(dir, 'state');
    return { env: { MYHV_STATE_DIR: stateDir, MYHV_RUN_DIR: join(dir, 'run') }, stateDir, kernel };
  }

  it.each([
    [['vm', 'create', 'x', '--kernel', '/k', '--no-network']],
    [['vm', 'start', 'x']],
    [['vm', 'restart', 'x']],
  ])('%j exits 1 with VMM_NOT_FOUND and a hint, before touching the state directory', async (argv) => {
    const { env, stateDir, kernel } = await host();
    const args = argv.map((a) => (a === '/k' ? kernel : a));
    const result = await runCaptured(['--json', ...args], { env });
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stderr).error).toMatchObject({
      code: 'VMM_NOT_FOUND',
      exitCode: 1,
      hint: expect.stringMatching(/simulator/),
    });
    expect(result.stdout).toBe('');
    expect(existsSync(stateDir)).toBe(false);
    const human = await runCaptured(args, { env });
    expect(human.stderr).toMatch(
      /no VMM: cloud-hypervisor is not on PATH.*\n.*hint: install Cloud Hypervisor/,
    );
  });

  it('commands that start no VMM still run (stop, rm, forward rm reach the VM lookup)', async () => {
    const { env } = await host();
    for (const argv of [
      ['vm', 'stop', 'x'],
      ['vm', 'rm', 'x'],
      ['forward', 'rm', 'x', '80'],
    ]) {
      const result = await runCaptured(['--json', ...argv], { env });
      expect(JSON.parse(result.stderr).error.code, argv.join(' ')).toBe('NOT_FOUND');
    }
  });

  it('doctor reports the missing VMM as a failed required check, and exits 1', async () => {
    const { env } = await host();
    const result = await runCaptured(['--json', 'doctor'], { env });
    const report = JSON.parse(result.stdout) as {
      ok: boolean;
      vmm: unknown;
      checks: { id: string; ok: boolean; required: boolean; fix: string | null }[];
    };
    expect(report.vmm).toBeNull();
    expect(report.checks.find((c) => c.id === 'vmm')).toMatchObject({
      ok: false,
      required: true,
      fix: expect.stringMatching(/simulator/),
    });
    expect(report.checks.find((c) => c.id === 'guest')).toMatchObject({ ok: true, skipped: true });
    expect(report.ok).toBe(false);
    expect(result.code).toBe(1);
    const human = await runCaptured(['doctor'], { env });
    expect(human.stdout).toMatch(/^VMM: none/);
    expect(human.stdout).toMatch(/✗ cloud-hypervisor +not on PATH and none configured/);
  });
});
