import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  isProcessAlive,
  listPids,
  parseProcStat,
  processStartTime,
  readCmdline,
  readProcStat,
} from './process-identity.js';

const NO_SUCH_PID = 2 ** 22 + 1;

describe('parseProcStat', () => {
  it('finds state and start time after a command name containing ") "', () => {
    const text = '4242 (evil) S 1 (x) R 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 0 0';
    expect(parseProcStat(text)).toEqual({ state: 'R', startTime: 987654 });
    expect(parseProcStat('garbage')).toBeUndefined();
  });
});

describe('process identity of this process', () => {
  it('reads state, start time, argv and the pid list', () => {
    expect(readProcStat(process.pid)?.state).toMatch(/^[RS]$/);
    const start = processStartTime(process.pid);
    expect(start).toBeGreaterThan(0);
    expect(isProcessAlive(process.pid)).toBe(true);
    expect(isProcessAlive(process.pid, start)).toBe(true);
    // Another start time is another process that once had this pid.
    expect(isProcessAlive(process.pid, start! + 1)).toBe(false);
    expect(readCmdline(process.pid)?.[0]).toContain('node');
    expect(listPids()).toContain(process.pid);
  });

  it('knows nothing of a pid that does not exist', () => {
    expect(readProcStat(NO_SUCH_PID)).toBeUndefined();
    expect(processStartTime(NO_SUCH_PID)).toBeUndefined();
    expect(isProcessAlive(NO_SUCH_PID)).toBe(false);
    expect(readCmdline(NO_SUCH_PID)).toBeUndefined();
  });

  it('keeps empty arguments inside the argv', async () => {
    const script = 'setTimeout(() => {}, 5000)';
    const child = spawn(process.execPath, ['-e', script, '', 'last'], { stdio: 'ignore' });
    try {
      await once(child, 'spawn');
      expect(readCmdline(child.pid!)).toEqual([process.execPath, '-e', script, '', 'last']);
    } finally {
      child.kill();
    }
  });

  it('counts an unreaped zombie as dead', async () => {
    const child = spawn('sh', ['-c', 'exit 0'], { stdio: 'ignore' });
    const exited = once(child, 'exit');
    const pid = child.pid!;
    const start = processStartTime(pid);
    // Not reaped until Node's SIGCHLD handler runs; either way the process is no longer alive.
    for (let i = 0; i < 200 && isProcessAlive(pid, start); i++) await new Promise((r) => setTimeout(r, 5));
    expect(isProcessAlive(pid, start)).toBe(false);
    await exited;
  });
});
