import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeHarness, pidsMentioning, probeOutput, vmmLabel } from './harness.js';

describe(`VmManager serial console (${vmmLabel})`, () => {
  it('serves the console while running, keeps serial.log, refuses a second console, and works after stop/start', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const vm = await h.manager.create({
      name: 'con',
      kernel: h.kernel,
      memory: '256M',
      network: { enabled: false },
    });
    const consoleSocket = join(vm.paths.socket!, '..', 'console.sock');
    expect((await stat(consoleSocket)).mode & 0o777).toBe(0o600);
    // `vm logs` still reads the probe guest's lines from serial.log.
    expect((await probeOutput(vm.paths.serialLog)).booted).toBe(true);
    expect((await stat(vm.paths.serialLog)).mode & 0o777).toBe(0o600);

    // The relay is detached: it outlives the call that created the VM, like the VMM.
    expect(await pidsMentioning(consoleSocket)).toHaveLength(1);
    const first = await h.manager.console('con');
    await expect(h.manager.console('con')).rejects.toMatchObject({ code: 'BUSY' });
    first.destroy();

    await h.manager.stop('con');
    expect(existsSync(consoleSocket)).toBe(false);
    expect(await pidsMentioning(consoleSocket)).toEqual([]);
    await expect(h.manager.console('con')).rejects.toMatchObject({ code: 'WRONG_STATE' });

    await h.manager.start('con');
    expect((await probeOutput(vm.paths.serialLog)).booted).toBe(true);
    // The simulator plays the probe guest's lines to the relay; a console attached later sees new output only,
    // so this checks the relay accepts a writer again and the log was rewritten for this boot.
    const again = await h.manager.console('con');
    again.destroy();
    const log = await readFile(vm.paths.serialLog, 'utf8');
    expect(log.match(/myhv-probe: booted/g)).toHaveLength(1);
    await h.manager.delete('con', { force: true });
    expect(await pidsMentioning(consoleSocket)).toEqual([]);
  });
});
