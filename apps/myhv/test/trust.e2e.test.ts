import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileModes, modeViolations } from '@my-hypervisor/vm-manager/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, e2eSkipReason, json, myhv, type Result, Sandbox } from './myhv.js';

const NOBODY = 65534;
const skip =
  e2eSkipReason() ??
  (spawnSync('setpriv', ['--version']).status !== 0 ? 'setpriv is missing (util-linux)' : undefined);
if (skip) console.warn(`skipped: myhv and directories others can write, because ${skip}`);

interface ErrorJson {
  error: { code: string; message: string; hint: string | null; exitCode: number; field: string | null };
}

function errorOf(result: Result): ErrorJson['error'] {
  return (JSON.parse(result.stderr) as ErrorJson).error;
}

/** Runs a shell script as nobody with no supplementary groups: an unprivileged local user. */
function asNobody(script: string, ...args: string[]): void {
  execFileSync('setpriv', [
    `--reuid=${NOBODY}`,
    `--regid=${NOBODY}`,
    '--clear-groups',
    'sh',
    '-c',
    script,
    'sh',
    ...args,
  ]);
}

interface DoctorJson {
  checks: { id: string; ok: boolean; skipped: boolean; detail: string; fix: string | null }[];
}

// Root runs myhv over a state directory an unprivileged user could write (here by mistake: mode 777). Whatever that
// user planted there must never make root run their program.
describe.skipIf(skip !== undefined).sequential('myhv and a state directory others can write', () => {
  const box = new Sandbox('trust');
  const run = (...args: string[]) => myhv(args, box.env);
  const marker = () => join(box.dir, 'marker');
  const script = () => join(box.stateDir, 'evil.sh');

  beforeAll(() => {
    box.create();
    // nobody may pass through root's sandbox directory, as through /var/lib.
    chmodSync(box.dir, 0o755);
    mkdirSync(box.stateDir);
    chmodSync(box.stateDir, 0o777);
    const now = new Date().toISOString();
    const record = {
      schema: 1,
      id: 'e0e0e0e0e0e0',
      name: 'evil',
      spec: {
        name: 'evil',
        kernel: box.kernel,
        memory: 128 * 1024 * 1024,
        cpus: 1,
        cmdline: 'console=ttyS0',
        disks: [],
        network: { enabled: false, forwards: [], queues: 1 },
        shares: [],
        vmm: { binary: script(), extraArgs: [] },
      },
      status: 'stopped',
      createdAt: now,
      updatedAt: now,
      resources: { forwards: [], shares: [] },
    };
    asNobody(
      'mkdir -p "$1/vms/evil" && printf %s "$2" > "$1/vms/evil/state.json" && ' +
        'printf "#!/bin/sh\\necho ran > %s\\n" "$3" > "$1/evil.sh" && chmod 755 "$1/evil.sh"',
      box.stateDir,
      JSON.stringify(record),
      marker(),
    );
  });
  afterAll(() => {
    box.destroy();
  });

  it('vm start and vm ls refuse the directory (exit 1, UNSAFE_PERMISSIONS, the fix); the script never ran', async () => {
    const started = await run('--json', 'vm', 'start', 'evil');
    expect(started.code, started.stderr).toBe(1);
    expect(errorOf(started)).toMatchObject({ code: 'UNSAFE_PERMISSIONS', exitCode: 1 });
    expect(errorOf(started).message).toContain(box.stateDir);
    expect(errorOf(started).hint).toContain(`chown root: ${box.stateDir} && chmod 700 ${box.stateDir}`);

    const listed = await run('vm', 'ls');
    expect(listed.code).toBe(1);
    expect(listed.stdout).toBe('');
    expect(listed.stderr).toMatch(
      new RegExp(`refusing to use the state directory at ${box.stateDir}: it is writable by group or others`),
    );
    expect(listed.stderr).toMatch(/hint: chown root: .* && chmod 700 /);
    expect(existsSync(marker())).toBe(false);
  });

  it('doctor explains it: the state directory check fails with the path and the fix', async () => {
    const result = await run('--json', 'doctor');
    expect(result.code).toBe(1);
    const state = json<DoctorJson>(result).checks.find((c) => c.id === 'state-dir');
    expect(state).toMatchObject({
      ok: false,
      fix: `chown root: ${box.stateDir} && chmod 700 ${box.stateDir}`,
    });
    expect(state?.detail).toMatch(/writable by group or others \(owner uid 0, mode 777\)/);
  });

  it('with the directory fixed, the VM nobody made is listed as unreadable, and gc and doctor name it', async () => {
    chmodSync(box.stateDir, 0o700);
    // The `vms` directory is still nobody's: refused as a whole.
    const refused = await run('--json', 'vm', 'ls');
    expect(refused.code).toBe(1);
    expect(errorOf(refused)).toMatchObject({ code: 'UNSAFE_PERMISSIONS', exitCode: 1 });
    expect(errorOf(refused).message).toContain(`${box.stateDir}/vms: it is owned by uid ${NOBODY}`);

    chownSync(join(box.stateDir, 'vms'), 0, 0);
    const listed = await run('--json', 'vm', 'ls');
    expect(listed.code, listed.stderr).toBe(0);
    expect(json(listed)).toEqual({
      vms: [],
      unreadable: [
        {
          name: 'evil',
          path: join(box.stateDir, 'vms/evil'),
          code: 'UNSAFE_PERMISSIONS',
          reason: expect.stringContaining(`owned by uid ${NOBODY}`),
        },
      ],
    });
    const human = await run('vm', 'ls');
    expect(human.code).toBe(0);
    expect(human.stdout).toBe('evil\tunreadable\t-\t-\t-\t-\n');
    expect(human.stderr).toContain(`VM evil is unreadable: refusing to use the record of VM evil at `);
    expect(human.stderr).toContain(join(box.stateDir, 'vms/evil'));

    const gc = await run('--json', 'gc');
    expect(gc.code, gc.stderr).toBe(1);
    expect(json<{ unreadable: { name: string }[] }>(gc).unreadable.map((u) => u.name)).toEqual(['evil']);
    const gcHuman = await run('gc');
    expect(gcHuman.code).toBe(1);
    expect(gcHuman.stdout).toContain('VM evil is unreadable');

    const doctor = json<DoctorJson>(await run('--json', 'doctor'));
    expect(doctor.checks.find((c) => c.id === 'records')).toMatchObject({ ok: false });
    expect(doctor.checks.find((c) => c.id === 'records')?.detail).toContain('evil');
    expect(doctor.checks.find((c) => c.id === 'state-dir')?.detail).toContain(join(box.stateDir, 'vms/evil'));

    expect((await run('--json', 'vm', 'start', 'evil')).code).toBe(1);
    expect(existsSync(marker())).toBe(false);
  });

  it('a record root owns may only name a binary allowedVmmBinaries lists: exit 2 before it runs', async () => {
    execFileSync('chown', ['-R', 'root:root', box.stateDir]);
    const refused = await run('--json', 'vm', 'start', 'evil');
    expect(refused.code, refused.stderr).toBe(2);
    expect(errorOf(refused)).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'vmm.binary' });
    expect(errorOf(refused).message).toMatch(/not in allowedVmmBinaries of the config/);
    expect(existsSync(marker())).toBe(false);

    // Allowed by root's config, it is run (its `--version` makes the marker) and refused as no cloud-hypervisor.
    const config = join(box.dir, 'config.yaml');
    writeFileSync(config, `allowedVmmBinaries: [${script()}]\n`);
    const allowed = await run('--json', '--config', config, 'vm', 'start', 'evil');
    expect(allowed.code, allowed.stderr).toBe(2);
    expect(errorOf(allowed).message).toMatch(/is not cloud-hypervisor/);
    expect(existsSync(marker())).toBe(true);
  });

  it('a corrupt record is listed as unreadable with its path; gc exits 1 naming it', async () => {
    mkdirSync(join(box.stateDir, 'vms/broken'), { mode: 0o700 });
    writeFileSync(join(box.stateDir, 'vms/broken/state.json'), '{"schema":1,', { mode: 0o600 });
    const listed = json<{ unreadable: { name: string; code: string; path: string }[] }>(
      await run('--json', 'vm', 'ls'),
    );
    expect(listed.unreadable).toContainEqual({
      name: 'broken',
      path: join(box.stateDir, 'vms/broken/state.json'),
      code: 'CORRUPT_STATE',
      reason: expect.stringMatching(/^not valid JSON/),
    });
    const gc = await run('gc');
    expect(gc.code).toBe(1);
    expect(gc.stdout).toContain(`VM broken is unreadable: ${join(box.stateDir, 'vms/broken/state.json')}`);
  });
});

/** Runs the bundle like `myhv`, under umask 000. */
function myhvUmask000(args: readonly string[], env: Record<string, string>): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      'sh',
      ['-c', 'umask 000 && exec "$0" "$@"', process.execPath, bin, ...args],
      {
        cwd: '/',
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
        timeout: 60_000,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

describe.skipIf(skip !== undefined).sequential('myhv under umask 000', () => {
  const box = new Sandbox('umask');
  beforeAll(() => {
    box.create();
  });
  afterAll(() => {
    box.destroy();
  });

  it('vm create makes every directory 0700 (0711 to let a confined VMM through) and every file and socket 0600', async () => {
    const created = await myhvUmask000(
      ['vm', 'create', 'web', '--kernel', box.kernel, '-p', '8080:80', '--share', `${box.share}:data`],
      box.env,
    );
    expect(created.code, created.stderr).toBe(0);
    const listed = await myhvUmask000(['vm', 'ls'], box.env);
    expect(listed.code, listed.stderr).toBe(0);
    const lines = [...fileModes(box.stateDir), ...fileModes(box.runDir)];
    // A confined VMM (a user of its own) is let through its directories (711): never a listing, never a write.
    const inspected = await myhv(['--json', 'vm', 'inspect', 'web'], box.env);
    const confined =
      (JSON.parse(inspected.stdout) as { vm: { confinement?: unknown } }).vm.confinement !== undefined;
    // The one exception: the tun node confined VMMs get bound over /dev/net/tun where that is root's alone.
    const tunNode = join(box.stateDir, 'confinement', 'dev', 'tun');
    expect(modeViolations(lines, { confined, tunNode }), lines.join('\n')).toEqual([]);
    expect(lines.join('\n')).toMatch(/vms\/web\/serial\.log file 600/);
    expect(lines.join('\n')).toMatch(/\/api\.sock socket 600/);
    // The two from before the serial console, plus the VMM's serial.sock and the relay's console.sock.
    expect(lines.join('\n')).toMatch(/\/console\.sock socket 600/);
    expect(lines.filter((line) => line.endsWith(' socket 600'))).toHaveLength(4);
    expect((await myhv(['vm', 'rm', '--force', 'web'], box.env)).code).toBe(0);
  });
});
