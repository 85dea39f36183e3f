import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VmManagerError } from '@my-hypervisor/vm-manager';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test/temp-dir.js';
import type { CliConfig } from './config.js';
import { CliError } from './errors.js';
import { assertVmmWorks, chooseVmm, describeVmm, withVmmHint } from './vmm-choice.js';

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
  it('falls back to the simulator when nothing is configured and nothing is on PATH', () => {
    const choice = chooseVmm({ sources: sources('unset') }, { PATH: '/nonexistent' }, simulator);
    expect(choice).toMatchObject({
      kind: 'simulator',
      source: 'fallback',
      path: null,
      command: '/usr/bin/node',
    });
    expect(choice.commandArgs).toEqual(['/app/myhv.js', '__chv-simulator']);
    expect(describeVmm(choice)).toMatch(/simulator.*no cloud-hypervisor on PATH/);
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
