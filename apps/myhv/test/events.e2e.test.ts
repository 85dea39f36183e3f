import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eSkipReason, myhv, Sandbox, startMyhv } from './myhv.js';

const skip = e2eSkipReason();
if (skip) console.warn(`skipped: the myhv events e2e tests, because ${skip}`);

interface Event {
  type: 'step' | 'status' | 'vmm';
  vm: string;
  source?: string;
  event?: string;
  op?: string;
  step?: string;
  phase?: string;
  status?: string;
  time: string;
  pid: number;
}

const ndjson = (text: string): Event[] =>
  text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Event);

describe.skipIf(skip !== undefined)('myhv events (simulator VMM)', () => {
  const box = new Sandbox('events');
  const run = (...args: string[]) => myhv(args, box.env);

  beforeAll(() => {
    box.create();
  });
  afterAll(() => {
    box.destroy();
  });

  it('prints nothing (exit 0) before any event, and the steps of a create afterwards', async () => {
    const empty = await run('--json', 'events');
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stdout).toBe('');

    const created = await run('vm', 'create', 'one', '--kernel', box.kernel, '--no-network');
    expect(created.code, created.stderr).toBe(0);
    const listed = await run('--json', 'events', '--vm', 'one');
    expect(listed.code, listed.stderr).toBe(0);
    const events = ndjson(listed.stdout);
    // The VMM's own events come through its serial relay, as it writes them: their place among these varies.
    const described = events
      .filter((e) => e.type !== 'vmm')
      .map((e) => (e.type === 'step' ? `${e.op} ${e.step} ${e.phase}` : e.status));
    expect(described).toEqual(
      expect.arrayContaining(['create vmm start', 'create vmm done', 'create vm.boot done', 'running']),
    );
    expect(described.indexOf('create vmm start')).toBeLessThan(described.indexOf('create vm.boot done'));
    expect(described.at(-1)).toBe('running');

    const human = await run('events', '--vm', 'one', '--since', '1h');
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^\S+Z one create vm\.boot done \(\d+ ms\)$/m);
    expect(human.stdout).toMatch(/^\S+Z one status running$/m);

    // Once the VM is stopped, the VMM's whole say is in, from its start to its shutdown.
    expect((await run('vm', 'stop', 'one')).code).toBe(0);
    const vmm = ndjson((await run('--json', 'events', '--vm', 'one')).stdout).filter((e) => e.type === 'vmm');
    expect(vmm.map((e) => `${e.source} ${e.event}`)).toEqual([
      'vmm starting',
      'vm booting',
      'vm booted',
      'vm shutdown',
      'vm deleted',
      'vmm shutdown',
    ]);
    expect((await run('events', '--vm', 'one')).stdout).toMatch(/^\S+Z one vmm vm booted$/m);

    const future = await run('--json', 'events', '--since', '2999-01-01');
    expect(future.stdout).toBe('');
    const bad = await run('events', '--since', 'yesterday');
    expect(bad.code).toBe(2);
  }, 120_000);

  it('-f follows a create made by another process and ends on Ctrl-C with 130', async () => {
    const follower = startMyhv(['--json', 'events', '-f', '--vm', 'two'], box.env);
    try {
      await new Promise((r) => setTimeout(r, 1_000));
      const created = await run('vm', 'create', 'two', '--kernel', box.kernel, '--no-network');
      expect(created.code, created.stderr).toBe(0);
      await follower.waitFor((line) => line.includes('"status":"running"'));
      const events = ndjson(follower.lines.join('\n'));
      expect(events.every((e) => e.vm === 'two')).toBe(true);
      expect(events.map((e) => e.step)).toContain('vm.boot');
      follower.child.kill('SIGINT');
      expect(await follower.exited).toBe(130);
    } finally {
      follower.child.kill('SIGKILL');
    }
  }, 120_000);
});
