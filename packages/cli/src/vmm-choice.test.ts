import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test/temp-dir.js';
import type { CliConfig } from './config.js';
import { CliError } from './errors.js';
import { chooseVmm, describeVmm } from './vmm-choice.js';

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
