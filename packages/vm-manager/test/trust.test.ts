import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simulatorCommand, writeProbeGuest } from '@my-hypervisor/chv-client/testing';
import { describe, expect, it } from 'vitest';
import { parseVmSpec, VmManager, VmManagerError } from '../src/index.js';
import { fileModes, modeViolations } from '../src/testing/index.js';
import { confined, hasVirtiofsd, isRoot, makeHarness } from './harness.js';

const NOBODY = 65534;
const hostileSkip = !isRoot
  ? 'not root (it plants files as nobody, then runs as root)'
  : spawnSync('setpriv', ['--version']).status !== 0
    ? 'setpriv is missing (util-linux)'
    : undefined;
if (hostileSkip) console.warn(`skipped: a record planted by an unprivileged user, because ${hostileSkip}`);
if (!hasVirtiofsd) console.warn('the umask test runs without a share, because virtiofsd is missing');

async function refusal(promise: Promise<unknown>): Promise<VmManagerError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(VmManagerError.isInstance(error), String(error)).toBe(true);
  return error as VmManagerError;
}

/** Runs a shell script as nobody (no supplementary groups), as an unprivileged local user would. */
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

describe('a state directory an unprivileged user can write', () => {
  it.skipIf(hostileSkip !== undefined)(
    'never makes root run the binary a planted record names: UNSAFE_PERMISSIONS, then vmm.binary refused',
    async () => {
      // Root's base directory, traversable by nobody; the state directory in it made world-writable by mistake.
      const base = await mkdtemp(join(tmpdir(), 'myhv-hostile-'));
      try {
        await chmod(base, 0o755);
        const stateDir = join(base, 'state');
        await mkdir(stateDir);
        await chmod(stateDir, 0o777);
        const kernel = await writeProbeGuest(join(base, 'vmlinux'));
        const marker = join(base, 'marker');
        const script = join(stateDir, 'evil.sh');
        const spec = parseVmSpec({
          name: 'evil',
          kernel,
          network: { enabled: false },
          vmm: { binary: script },
        });
        const now = new Date().toISOString();
        const record = {
          schema: 1,
          id: 'e0e0e0e0e0e0',
          name: 'evil',
          spec,
          status: 'stopped',
          createdAt: now,
          updatedAt: now,
          resources: { forwards: [], shares: [] },
        };
        asNobody(
          'mkdir -p "$1/vms/evil" && printf %s "$2" > "$1/vms/evil/state.json" && ' +
            'printf "#!/bin/sh\\necho ran > %s\\n" "$3" > "$1/evil.sh" && chmod 755 "$1/evil.sh"',
          stateDir,
          JSON.stringify(record),
          marker,
        );
        expect(lstatSync(join(stateDir, 'vms/evil/state.json')).uid).toBe(NOBODY);
        const sim = simulatorCommand();
        const manager = new VmManager({
          stateDir,
          runDir: join(base, 'run'),
          vmm: { command: sim.command, commandArgs: [...sim.args] },
        });

        for (const attempt of [
          manager.start('evil'),
          manager.list(),
          manager.listAll(),
          manager.get('evil'),
        ]) {
          const error = await refusal(attempt);
          expect(error.code).toBe('UNSAFE_PERMISSIONS');
          expect(error.details).toMatchObject({ path: stateDir, mode: 0o777, uid: 0 });
          expect(error.details.fix).toBe(`chown root: ${stateDir} && chmod 700 ${stateDir}`);
        }

        // Root fixes the state directory only: what nobody made inside it is still refused, one level at a time.
        await chmod(stateDir, 0o700);
        expect((await refusal(manager.start('evil'))).details).toMatchObject({
          path: join(stateDir, 'vms'),
          uid: NOBODY,
        });
        await chown(join(stateDir, 'vms'), 0, 0);
        expect((await refusal(manager.start('evil'))).details).toMatchObject({
          path: join(stateDir, 'vms/evil'),
          uid: NOBODY,
        });
        expect(await manager.listAll()).toMatchObject({
          vms: [],
          unreadable: [{ name: 'evil', code: 'UNSAFE_PERMISSIONS', path: join(stateDir, 'vms/evil') }],
        });

        // Even a record root owns may only name a binary root allowed: refused before it is run at all.
        execFileSync('chown', ['-R', 'root:root', stateDir]);
        const notAllowed = await refusal(manager.start('evil'));
        expect(notAllowed.code).toBe('INVALID_ARGUMENT');
        expect(notAllowed.details.field).toBe('vmm.binary');
        expect(notAllowed.message).toMatch(/not in allowedVmmBinaries/);
        const fromSpec = await refusal(
          manager.create({ name: 'evil2', kernel, network: { enabled: false }, vmm: { binary: script } }),
        );
        expect(fromSpec).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'vmm.binary' } });
        expect(existsSync(marker)).toBe(false);

        // The allow-list is what kept it from running: allowed, it is run (and refused as not cloud-hypervisor).
        const allowing = new VmManager({
          ...manager.options,
          vmm: { ...manager.options.vmm, allowedBinaries: [script] },
        });
        expect((await refusal(allowing.start('evil'))).details.field).toBe('vmm.binary');
        expect(existsSync(marker)).toBe(true);
      } finally {
        await rm(base, { recursive: true, force: true });
      }
    },
  );
});

describe('file modes whatever the umask', () => {
  it('creates every directory 0700 and every file and socket 0600 under umask 000', async () => {
    await using h = await makeHarness({ backend: 'memory', shares: hasVirtiofsd });
    const old = process.umask(0);
    try {
      await h.manager.create({
        name: 'umask',
        kernel: h.kernel,
        network: { forwards: [{ hostPort: 8080, guestPort: 80 }] },
        shares: hasVirtiofsd ? [{ hostPath: h.shareDir, tag: 'data' }] : [],
      });
      await h.manager.list();
    } finally {
      process.umask(old);
    }
    const stateModes = fileModes(h.stateDir, { relative: true });
    const modes = fileModes(h.runDir, { relative: true });
    const all = [...stateModes, ...modes];
    // A confined VMM (a user of its own) is let through to its own directories (711), never into a listing; the one
    // exception is the tun node confined VMMs get bound over /dev/net/tun (hosts where that is root's alone).
    expect(modeViolations(all, { confined, tunNode: 'confinement/dev/tun' }), all.join('\n')).toEqual([]);
    // What is there: the record, the VMM's logs, pid file and socket, the reservation, a share's daemon files.
    expect(stateModes.join('\n')).toMatch(/vms\/umask\/serial\.log file 600/);
    // A confined VMM logs to its stderr, a file the manager opened for it.
    expect(stateModes.join('\n')).toMatch(
      confined ? /vms\/umask\/vmm\.log file 600/ : /vms\/umask\/vmm\.log\.stderr file 600/,
    );
    expect(stateModes.join('\n')).toMatch(/vms\/umask\/vmm\.pid file 600/);
    expect(stateModes.join('\n')).toMatch(/ipam\/10\.62\.0\.0_24\/last_reserved_ip file 600/);
    expect(modes.join('\n')).toMatch(/api\.sock socket 600/);
    if (hasVirtiofsd) expect(modes.join('\n')).toMatch(/\.sock socket 600[\s\S]*\.sock socket 600/);
  });
});
