import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleSession, e2eSkipReason, have, myhv, Sandbox } from './myhv.js';

const skip = e2eSkipReason() ?? (have('script') ? undefined : 'script is missing (apt-get install bsdutils)');
if (skip) console.warn(`skipped: the console e2e tests, because ${skip}`);

describe.skipIf(skip)('myhv vm console (simulator VMM)', () => {
  const box = new Sandbox('console');
  const run = (...args: string[]) => myhv(args, box.env);

  beforeAll(() => {
    box.create();
  });
  afterAll(() => {
    box.destroy();
  });

  it('shows the guest output, detaches with Ctrl-], refuses a second console, and works again after a restart', async () => {
    expect((await run('vm', 'create', 'web', '--kernel', box.kernel, '--memory', '64M')).code).toBe(0);

    const first = await consoleSession(box.env, 'web', /myhv-probe: booted/, '\x1d');
    expect(first.output).toContain('Ctrl-]');
    expect(first.output).toContain('myhv-probe: booted');
    expect(first.code, first.output).toBe(0);

    // vm logs keeps reading the serial log the relay writes.
    const logs = await run('vm', 'logs', 'web');
    expect(logs.code).toBe(0);
    expect(logs.stdout).toContain('myhv-probe: booted');

    // A second console while one is attached: BUSY (exit 1), the first stays attached until Ctrl-].
    const holder = consoleSession(box.env, 'web', /myhv-probe: booted/, '');
    await new Promise((r) => setTimeout(r, 1_500));
    const second = await run('--json', 'vm', 'console', 'web');
    expect(second.code).toBe(1);
    expect(JSON.parse(second.stdout || second.stderr)).toMatchObject({ error: { code: 'BUSY' } });
    const holderChild = await Promise.race([
      holder,
      new Promise((r) => setTimeout(() => r('still attached'), 500)),
    ]);
    expect(holderChild).toBe('still attached');

    // A restart stops the relay with the VMM (the attached console sees it close) and starts a new one.
    expect((await run('vm', 'restart', 'web')).code).toBe(0);
    expect((await holder).code).toBe(0);
    const again = await consoleSession(box.env, 'web', /myhv-probe: booted/, '\x1d');
    expect(again.code, again.output).toBe(0);
    expect(again.output).toContain('myhv-probe: booted');

    expect((await run('vm', 'stop', 'web')).code).toBe(0);
    const stopped = await run('--json', 'vm', 'console', 'web');
    expect(stopped.code).toBe(1);
    expect(JSON.parse(stopped.stdout || stopped.stderr)).toMatchObject({ error: { code: 'WRONG_STATE' } });
  }, 90_000);
});
