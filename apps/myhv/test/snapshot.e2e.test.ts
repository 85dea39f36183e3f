import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eSkipReason, inProcessOnly, json, myhv, Sandbox } from './myhv.js';

const skip = e2eSkipReason();
if (skip) console.warn(`skipped: the snapshot e2e tests, because ${skip}`);

/** Whether a process with this pid runs (a zombie, a child of this test process not yet reaped, does not). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

interface SnapshotJson {
  id: string;
  path: string;
  sizeBytes: number;
  status: string;
}

describe.skipIf(skip !== undefined)('myhv vm snapshot / restore (simulator VMM)', () => {
  const box = new Sandbox('snap');
  const run = (...args: string[]) => myhv(args, box.env);

  beforeAll(() => {
    box.create();
  });
  afterAll(() => {
    box.destroy();
  });

  it('snapshots, lists, restores, refuses bad input with exit 2, removes, and rm deletes the rest', async () => {
    expect((await run('vm', 'create', 'web', '--kernel', box.kernel, '--memory', '64M')).code).toBe(0);

    const taken = await run('--json', 'vm', 'snapshot', 'web');
    expect(taken.code, taken.stderr).toBe(0);
    const first = json<{ vm: string; status: string; snapshot: SnapshotJson }>(taken);
    expect(first).toMatchObject({ vm: 'web', status: 'running', snapshot: { status: 'running' } });
    expect(first.snapshot.path).toBe(join(box.stateDir, 'vms', 'web', 'snapshots', first.snapshot.id));

    const to = join(box.dir, 'snaps');
    // A confined VMM (a user of its own) writes the snapshot there: it must be let through.
    mkdirSync(to, { mode: 0o711 });
    const paused = await run('--json', 'vm', 'snapshot', 'web', '--to', to, '--leave-paused');
    expect(paused.code, paused.stderr).toBe(0);
    const second = json<{ status: string; snapshot: SnapshotJson }>(paused);
    expect(second.status).toBe('paused');
    expect(second.snapshot.path.startsWith(`${to}/web-`)).toBe(true);

    const ls = json<{ snapshots: SnapshotJson[] }>(await run('--json', 'vm', 'snapshot', 'ls', 'web'));
    expect(ls.snapshots.map((s) => s.id)).toEqual([first.snapshot.id, second.snapshot.id]);
    const table = await run('vm', 'snapshot', 'ls', 'web');
    expect(table.stdout).toContain(first.snapshot.id);

    const relative = await run('--json', 'vm', 'snapshot', 'web', '--to', 'snaps');
    expect(relative.code).toBe(2);
    expect(json<{ error: { code: string } }>({ ...relative, stdout: relative.stderr }).error.code).toBe(
      'INVALID_ARGUMENT',
    );

    const restored = await run('--json', 'vm', 'restore', 'web', '--from', first.snapshot.id);
    expect(restored.code, restored.stderr).toBe(0);
    expect(json<{ vm: { status: string }; snapshot: SnapshotJson }>(restored)).toMatchObject({
      vm: { status: 'running' },
      snapshot: { id: first.snapshot.id },
    });

    const unknown = await run('--json', 'vm', 'restore', 'web', '--from', 'nope');
    expect(unknown.code).toBe(1);
    expect(JSON.parse(unknown.stderr).error.code).toBe('NOT_FOUND');
    expect(json<{ vm: { status: string } }>(await run('--json', 'vm', 'inspect', 'web')).vm.status).toBe(
      'running',
    );

    const removed = await run('--json', 'vm', 'snapshot', 'rm', 'web', first.snapshot.id);
    expect(removed.code, removed.stderr).toBe(0);
    expect(existsSync(first.snapshot.path)).toBe(false);

    expect((await run('vm', 'rm', '--force', 'web')).code).toBe(0);
    expect(existsSync(second.snapshot.path)).toBe(false);
  });

  it.skipIf(inProcessOnly('--vmm-standby on'))(
    '--vmm-standby on: the snapshot leaves an idle VMM that the restore takes over; rm leaves none',
    async () => {
      const standbyRun = (...args: string[]) => myhv(['--vmm-standby', 'on', ...args], box.env);
      const record = () =>
        JSON.parse(readFileSync(join(box.stateDir, 'vms', 'db', 'state.json'), 'utf8')) as {
          resources: {
            vmm?: { pid: number; startTime?: number };
            standby?: { pid: number; startTime?: number };
          };
        };
      expect((await standbyRun('vm', 'create', 'db', '--kernel', box.kernel, '--memory', '64M')).code).toBe(
        0,
      );
      // The CLI exits once the standby it started after the snapshot is recorded.
      const taken = await standbyRun('vm', 'snapshot', 'db');
      expect(taken.code, taken.stderr).toBe(0);
      const standby = record().resources.standby!;
      expect(running(standby.pid)).toBe(true);

      const restored = await standbyRun('--json', 'vm', 'restore', 'db');
      expect(restored.code, restored.stderr).toBe(0);
      expect(record().resources.vmm!.pid).toBe(standby.pid);
      const next = record().resources.standby!;
      expect(next.pid).not.toBe(standby.pid);

      expect((await standbyRun('vm', 'rm', '--force', 'db')).code).toBe(0);
      expect(running(standby.pid)).toBe(false);
      expect(running(next.pid)).toBe(false);
    },
  );
});
