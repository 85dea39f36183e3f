import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { isProcessAlive } from '@my-hypervisor/host-utils';
import { describe, expect, it } from 'vitest';
import { stopProcess, waitForExit } from './stop-process.js';

function start(script: string) {
  const child = spawn('/bin/sh', ['-c', script], { stdio: 'ignore' });
  const exited = once(child, 'exit');
  return { pid: child.pid!, exited };
}

describe('stopProcess', () => {
  it('stops a process with SIGTERM', async () => {
    const { pid, exited } = start('exec sleep 30');
    expect(await stopProcess(pid, { graceMs: 2_000, exited })).toEqual({ stopped: true, killed: false });
    expect(isProcessAlive(pid)).toBe(false);
  });

  it('escalates to SIGKILL when SIGTERM is ignored, also without an exit event (poll)', async () => {
    const { pid } = start("trap '' TERM; while :; do sleep 0.05; done");
    await new Promise((resolve) => setTimeout(resolve, 100));
    const startAt = performance.now();
    expect(await stopProcess(pid, { graceMs: 200 })).toEqual({ stopped: true, killed: true });
    expect(performance.now() - startAt).toBeGreaterThanOrEqual(190);
    expect(isProcessAlive(pid)).toBe(false);
  });

  it('skips the rest of the grace period when its signal aborts', async () => {
    const { pid } = start("trap '' TERM; while :; do sleep 0.05; done");
    await new Promise((resolve) => setTimeout(resolve, 100));
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const startAt = performance.now();
    expect(await stopProcess(pid, { graceMs: 10_000, signal: controller.signal })).toEqual({
      stopped: true,
      killed: true,
    });
    expect(performance.now() - startAt).toBeLessThan(2_000);
  });

  it('reports nothing stopped for a process that is already gone', async () => {
    const { pid, exited } = start('exit 0');
    await exited;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await stopProcess(pid, { graceMs: 100 })).toEqual({ stopped: false, killed: false });
  });

  it('waitForExit gives up after its timeout', async () => {
    const { pid } = start('exec sleep 30');
    expect(await waitForExit(pid, 50)).toBe(false);
    process.kill(pid, 'SIGKILL');
    expect(await waitForExit(pid, 2_000)).toBe(true);
  });
});
