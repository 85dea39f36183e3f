import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eSkipReason, json, myhv, Sandbox, virtiofsdMissing } from './myhv.js';

const skip = e2eSkipReason();
if (skip) console.warn(`skipped: the VMM choice end to end, because ${skip}`);

/** This PATH without the directories that hold a cloud-hypervisor: a host where it is not installed. */
const pathWithoutVmm = (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin')
  .split(delimiter)
  .filter((dir) => dir !== '' && !existsSync(join(dir, 'cloud-hypervisor')))
  .join(delimiter);

interface VmJson {
  name: string;
  status: string;
}

describe
  .skipIf(skip !== undefined)
  .sequential('a host without cloud-hypervisor: the simulator only when chosen', () => {
    const box = new Sandbox('vmm');
    // The sandbox's environment without its MYHV_CLOUD_HYPERVISOR=simulator: nothing chooses a VMM.
    const { MYHV_CLOUD_HYPERVISOR: _chosen, ...unchosen } = box.env;
    const noVmm = { ...unchosen, PATH: pathWithoutVmm };
    const run = (...args: string[]) => myhv(args, noVmm);

    beforeAll(() => {
      box.create();
    });
    afterAll(() => box.destroy());

    it('vm create exits 1 with the hint, and makes nothing', async () => {
      const before = box.snapshot();
      const human = await run('vm', 'create', 'x', '--kernel', box.kernel);
      expect(human.code, human.stderr).toBe(1);
      expect(human.stdout).toBe('');
      expect(human.stderr).toMatch(/no VMM: cloud-hypervisor is not on PATH and none is configured/);
      expect(human.stderr).toMatch(/hint: install Cloud Hypervisor .*--vmm-binary simulator/);
      const machine = await run('--json', 'vm', 'create', 'x', '--kernel', box.kernel);
      expect(machine.code).toBe(1);
      expect(JSON.parse(machine.stderr).error).toMatchObject({ code: 'VMM_NOT_FOUND', exitCode: 1 });
      expect(box.snapshot()).toBe(before);
      expect(json<{ vms: VmJson[] }>(await run('--json', 'vm', 'ls')).vms).toEqual([]);
    });

    it('vm create with --vmm-binary simulator works, and says which VMM', async () => {
      const result = await run('--vmm-binary', 'simulator', 'vm', 'create', 'x', '--kernel', box.kernel);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout.split('\n')[0]).toMatch(/^VMM: the bundled simulator \(chosen by --vmm-binary/);
      expect(result.stdout).toMatch(/✓ created x at 10\.62\.0\.\d+, running/);
    });

    it('commands that start no VMM work without one; start and restart refuse before any change', async () => {
      const stop = await run('vm', 'stop', 'x', '--timeout', '0');
      expect(stop.code, stop.stderr).toBe(0);
      const before = box.snapshot();
      for (const operation of ['start', 'restart']) {
        const result = await run('--json', 'vm', operation, 'x');
        expect(result.code, operation).toBe(1);
        expect(JSON.parse(result.stderr).error.code).toBe('VMM_NOT_FOUND');
      }
      expect(box.snapshot()).toBe(before);
      const started = await run('--json', '--vmm-binary', 'simulator', 'vm', 'start', 'x');
      expect(started.code, started.stderr).toBe(0);
      expect(json<{ vm: VmJson }>(started).vm.status).toBe('running');
      const rm = await run('vm', 'rm', '--force', 'x');
      expect(rm.code, rm.stderr).toBe(0);
      expect(json<{ vms: VmJson[] }>(await run('--json', 'vm', 'ls')).vms).toEqual([]);
    });

    it('doctor reports the missing VMM as a failed check, and exits 1', async () => {
      const result = await run('doctor');
      expect(result.code).toBe(1);
      expect(result.stdout).toMatch(/^VMM: none/);
      expect(result.stdout).toMatch(/✗ cloud-hypervisor +not on PATH and none configured\n.*fix: install/);
    });

    it.skipIf(virtiofsdMissing())(
      'myhv demo alone falls back to the simulator, saying so first',
      async () => {
        const result = await myhv(['demo'], { PATH: pathWithoutVmm });
        expect(result.code, result.stderr).toBe(0);
        expect(result.stdout.split('\n')[0]).toMatch(
          /^myhv demo: VMM: the bundled simulator \(a fallback: no cloud-hypervisor on PATH/,
        );
        expect(result.stdout).toMatch(/nothing left behind/);
      },
    );
  });
if (!skip && virtiofsdMissing())
  console.warn('skipped: myhv demo falling back to the simulator, because virtiofsd is missing');
