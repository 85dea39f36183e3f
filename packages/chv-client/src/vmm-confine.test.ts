import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectChvError, isRoot, tempDir } from '../test/helpers.js';
import { ChvProcess } from './index.js';
import { simulatorCommand } from './testing/index.js';
import { buildVmmCommand } from './vmm-command.js';
import { confineCommand } from './vmm-confine.js';

const UID = 1_500_000_321;
const hostTunMode = statSync('/dev/net/tun', { throwIfNoEntry: false })?.mode ?? 0;

describe('confineCommand', () => {
  it('without a tun node: setpriv alone, and the spawner joins the cgroups', () => {
    const { file, argv, joinAfterSpawn } = confineCommand('/usr/bin/cloud-hypervisor', ['-v'], {
      uid: UID,
      gid: UID,
      cgroupProcs: ['/sys/fs/cgroup/myhv/abc/cgroup.procs'],
    });
    expect([file, ...argv]).toEqual([
      'setpriv',
      `--reuid=${UID}`,
      `--regid=${UID}`,
      '--clear-groups',
      '--no-new-privs',
      '--inh-caps=-all',
      '--bounding-set=-all',
      '--',
      '/usr/bin/cloud-hypervisor',
      '-v',
    ]);
    expect(joinAfterSpawn).toEqual(['/sys/fs/cgroup/myhv/abc/cgroup.procs']);
  });

  it('with a tun node: unshare, the root script (the node), setpriv, then the VMM, every value an argument; the spawner joins the cgroups', () => {
    const { file, argv, joinAfterSpawn } = confineCommand(
      '/usr/bin/cloud-hypervisor',
      ['--api-socket', 'path=/x y'],
      {
        uid: UID,
        gid: UID,
        groups: [108],
        cgroupProcs: ['/sys/fs/cgroup/myhv/abc/cgroup.procs'],
        tunDevice: true,
      },
    );
    expect(joinAfterSpawn).toEqual(['/sys/fs/cgroup/myhv/abc/cgroup.procs']);
    expect(file).toBe('unshare');
    expect(argv.slice(0, 5)).toEqual(['--mount', '--propagation', 'private', '--', 'sh']);
    const setpriv = argv.indexOf('setpriv');
    // Only a flag between the script's name ($0) and setpriv: no value is interpolated into the script.
    expect(argv.slice(argv.indexOf('myhv-confine') + 1, setpriv)).toEqual(['-']);
    expect(argv.slice(setpriv)).toEqual([
      'setpriv',
      `--reuid=${UID}`,
      `--regid=${UID}`,
      '--groups=108',
      '--no-new-privs',
      '--inh-caps=-all',
      '--bounding-set=-all',
      '--',
      '/usr/bin/cloud-hypervisor',
      '--api-socket',
      'path=/x y',
    ]);
  });

  it('with a prepared tun node: the root script binds it, its path the one argument before setpriv', () => {
    const { file, argv } = confineCommand('/usr/bin/cloud-hypervisor', [], {
      uid: UID,
      gid: UID,
      tunDevice: true,
      tunNode: '/var/lib/myhv/confinement/dev/tun',
    });
    expect(file).toBe('unshare');
    const script = argv[argv.indexOf('-c') + 1]!;
    expect(script).toContain('mount --bind "$1" /dev/net/tun');
    expect(script).not.toContain('mknod');
    expect(argv.slice(argv.indexOf('myhv-confine') + 1, argv.indexOf('setpriv'))).toEqual([
      '/var/lib/myhv/confinement/dev/tun',
    ]);
    // With userfaultfd the tmpfs is made anyway (its node goes there too): the prepared node is not used.
    const both = confineCommand('/usr/bin/cloud-hypervisor', [], {
      uid: UID,
      gid: UID,
      tunDevice: true,
      tunNode: '/var/lib/myhv/confinement/dev/tun',
      userfaultfd: true,
    });
    expect(both.argv[both.argv.indexOf('-c') + 1]).toContain('mknod -m 666 /dev/net/tun');
    expect(both.argv).not.toContain('/var/lib/myhv/confinement/dev/tun');
  });

  it('with userfaultfd: the mount namespace (with the tun node) and the flag that binds a userfaultfd node', () => {
    const { file, argv } = confineCommand('/usr/bin/cloud-hypervisor', [], {
      uid: UID,
      gid: UID,
      userfaultfd: true,
    });
    expect(file).toBe('unshare');
    expect(argv.slice(argv.indexOf('myhv-confine') + 1, argv.indexOf('setpriv'))).toEqual(['userfaultfd']);
  });

  it('inside a network namespace, `ip netns exec` runs between the root script and setpriv', () => {
    const command = buildVmmCommand({
      socketPath: '/run/x/api.sock',
      netns: 'myhv-abc',
      confine: { uid: UID, gid: UID, tunDevice: true },
    });
    // The tun node is made in the private mount namespace first; `ip netns exec` then setpriv drops the ids.
    expect(command.file).toBe('unshare');
    const ip = command.argv.indexOf('ip');
    expect(command.argv.slice(ip, ip + 5)).toEqual(['ip', 'netns', 'exec', 'myhv-abc', 'setpriv']);
    expect(command.argv).toContain('--clear-groups');
    expect(command.argv.at(-3)).toBe('cloud-hypervisor');
  });

  it.each([
    [{ uid: 0, gid: UID }, 'confine.uid'],
    [{ uid: UID, gid: -1 }, 'confine.gid'],
    [{ uid: UID, gid: UID, groups: [1.5] }, 'confine.groups'],
    [{ uid: UID, gid: UID, cgroupProcs: ['relative/cgroup.procs'] }, 'confine.cgroupProcs'],
    [{ uid: UID, gid: UID, cgroupProcs: ['/sys/fs/cgroup/../etc/cgroup.procs'] }, 'confine.cgroupProcs'],
    [{ uid: UID, gid: UID, cgroupProcs: ['/sys/fs/cgroup/x/tasks'] }, 'confine.cgroupProcs'],
    [{ uid: UID, gid: UID, tunDevice: true, tunNode: 'dev/tun' }, 'confine.tunNode'],
  ])('refuses %j naming %s, before anything runs', async (confine, field) => {
    const error = await expectChvError(
      ChvProcess.spawn({ socketPath: '/tmp/never/api.sock', confine }),
      'INVALID_ARGUMENT',
    );
    expect(error.details.field).toBe(field);
  });
});

function status(pid: number): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const at = line.indexOf(':');
    if (at > 0) fields[line.slice(0, at)] = line.slice(at + 1).trim();
  }
  return fields;
}

const cgroupSkip = !isRoot
  ? 'not root'
  : !statSync('/sys/fs/cgroup/pids', { throwIfNoEntry: false })?.isDirectory()
    ? 'no cgroup v1 pids hierarchy at /sys/fs/cgroup/pids'
    : undefined;
if (cgroupSkip) it.skip(`a confined simulator process — skipped: ${cgroupSkip}`, () => {});

describe.skipIf(cgroupSkip)('a confined VMM process (the simulator, spawned as root)', () => {
  it.each([
    ['with its own tun node', true, false],
    ['with a prepared tun node bound', true, true],
    ['setpriv alone', false, false],
  ])(
    'runs as its uid with no capabilities and no_new_privs, in its cgroup: %s',
    async (_, tunDevice, bound) => {
      await using dir = await tempDir();
      const tunNode = join(dir.path, 'tun');
      if (bound) {
        // As vm-manager prepares it: 10:200, 0666, where only root gets to it (the test's directory is 0711).
        execFileSync('mknod', ['-m', '666', tunNode, 'c', '10', '200']);
      }
      // The VMM makes its API socket in a directory it owns; everything on the way must let it through.
      chmodSync(dir.path, 0o711);
      const runDir = join(dir.path, 'run');
      mkdirSync(runDir, { mode: 0o700 });
      chownSync(runDir, UID, UID);
      const cgroup = `/sys/fs/cgroup/pids/myhv-chv-test-${process.pid}-${tunDevice}-${bound}`;
      mkdirSync(cgroup);
      const sim = simulatorCommand();
      try {
        await using vmm = await ChvProcess.spawn({
          command: sim.command,
          commandArgs: [...sim.args],
          socketPath: join(runDir, 'api.sock'),
          logFile: join(dir.path, 'vmm.log'),
          confine: {
            uid: UID,
            gid: UID,
            cgroupProcs: [`${cgroup}/cgroup.procs`],
            tunDevice,
            ...(bound ? { tunNode } : {}),
          },
        });
        const fields = status(vmm.pid);
        expect(fields.Uid?.split(/\s+/)).toEqual([String(UID), String(UID), String(UID), String(UID)]);
        expect(fields.Gid?.split(/\s+/)[0]).toBe(String(UID));
        expect(fields.Groups).toBe('');
        expect(fields.CapEff).toBe('0000000000000000');
        expect(fields.CapPrm).toBe('0000000000000000');
        expect(fields.CapBnd).toBe('0000000000000000');
        expect(fields.NoNewPrivs).toBe('1');
        expect(readFileSync(`/proc/${vmm.pid}/cgroup`, 'utf8')).toContain(
          `:pids:/myhv-chv-test-${process.pid}-${tunDevice}-${bound}\n`,
        );
        // With a tun node: its own /dev/net/tun in its own mount namespace (the host's stays as it was).
        if (tunDevice) {
          const tun = statSync(`/proc/${vmm.pid}/root/dev/net/tun`);
          expect([tun.isCharacterDevice(), tun.mode & 0o777, tun.rdev]).toEqual([
            true,
            0o666,
            statSync('/dev/net/tun').rdev,
          ]);
          // And it may open it (as the VMM opens it for its TAP), as its own uid.
          expect(
            execFileSync('nsenter', [
              `--mount=/proc/${vmm.pid}/ns/mnt`,
              `--setuid=${UID}`,
              `--setgid=${UID}`,
              'sh',
              '-c',
              'exec 3<>/dev/net/tun && echo opened',
            ]).toString(),
          ).toBe('opened\n');
        }
        const mounts = readFileSync(`/proc/${vmm.pid}/mountinfo`, 'utf8');
        expect(mounts.includes(' myhv-dev ')).toBe(tunDevice && !bound);
        expect(mounts.includes(' /dev/net/tun ')).toBe(bound);
        expect(statSync('/dev/net/tun').mode).toBe(hostTunMode);
        // The log file it writes is its own.
        expect(statSync(join(dir.path, 'vmm.log')).uid).toBe(UID);
        // It still answers on its socket like any VMM.
        expect((await vmm.client.vmmPing()).version).toBeTruthy();
        await vmm.stop({ gracefulMs: 0 });
      } finally {
        rmdirSync(cgroup);
      }
    },
  );

  it('a cgroup it cannot join fails the spawn with INVALID_ARGUMENT naming confine.cgroupProcs, and the process goes', async () => {
    await using dir = await tempDir();
    chmodSync(dir.path, 0o711);
    const runDir = join(dir.path, 'run');
    mkdirSync(runDir, { mode: 0o700 });
    chownSync(runDir, UID, UID);
    const sim = simulatorCommand();
    const missing = `/sys/fs/cgroup/pids/myhv-chv-test-${process.pid}-missing/cgroup.procs`;
    const error = await expectChvError(
      ChvProcess.spawn({
        command: sim.command,
        commandArgs: [...sim.args],
        socketPath: join(runDir, 'api.sock'),
        confine: { uid: UID, gid: UID, cgroupProcs: [missing], tunDevice: true },
      }),
      'INVALID_ARGUMENT',
    );
    expect(error.message).toContain(missing);
    expect(error.details).toMatchObject({ field: 'confine.cgroupProcs' });
    const pid = error.details.pid as number;
    expect(statSync(`/proc/${pid}`, { throwIfNoEntry: false })).toBeUndefined();
  });

  it.skipIf(!statSync('/dev/userfaultfd', { throwIfNoEntry: false })?.isCharacterDevice())(
    'with userfaultfd it gets a /dev/userfaultfd of its own that it may open; the host keeps its node',
    async () => {
      await using dir = await tempDir();
      chmodSync(dir.path, 0o711);
      const runDir = join(dir.path, 'run');
      mkdirSync(runDir, { mode: 0o700 });
      chownSync(runDir, UID, UID);
      const hostMode = statSync('/dev/userfaultfd').mode;
      const sim = simulatorCommand();
      await using vmm = await ChvProcess.spawn({
        command: sim.command,
        commandArgs: [...sim.args],
        socketPath: join(runDir, 'api.sock'),
        confine: { uid: UID, gid: UID, userfaultfd: true },
      });
      const node = statSync(`/proc/${vmm.pid}/root/dev/userfaultfd`);
      expect(node.isCharacterDevice()).toBe(true);
      expect(node.rdev).toBe(statSync('/dev/userfaultfd').rdev);
      expect(node.mode & 0o777).toBe(0o666);
      expect(statSync('/dev/userfaultfd').mode).toBe(hostMode);
      await vmm.stop({ gracefulMs: 0 });
    },
  );
});
