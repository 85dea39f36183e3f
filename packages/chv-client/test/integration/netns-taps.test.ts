import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChvProcess } from '../../src/index.js';
import { simulatorCommand } from '../../src/testing/index.js';
import { expectChvError, isRoot, tempDir } from '../helpers.js';

const run = promisify(execFile);
const hasIp = existsSync('/usr/sbin/ip') || existsSync('/sbin/ip') || existsSync('/usr/bin/ip');
const virtiofsd = ['/usr/lib/qemu/virtiofsd', '/usr/libexec/virtiofsd'].find((path) => existsSync(path));
const canRun = isRoot && hasIp;
if (!canRun) {
  console.warn(
    `skipped: TAP checks in a network namespace, because ${isRoot ? '`ip` is missing' : 'they need root'}`,
  );
}

// Unique to this package and process: other packages' tests create namespaces at the same time.
const netns = `myhv-chv-${process.pid}-1`;
const sim = simulatorCommand();

describe.skipIf(!canRun)('simulator TAP checks inside a network namespace (root)', () => {
  beforeAll(async () => {
    await run('ip', ['netns', 'add', netns]);
    await run('ip', ['-n', netns, 'tuntap', 'add', 'dev', 'tapplain', 'mode', 'tap']);
    await run('ip', ['-n', netns, 'tuntap', 'add', 'dev', 'tapmq', 'mode', 'tap', 'multi_queue']);
  });

  afterAll(async () => {
    await run('ip', ['netns', 'del', netns]).catch(() => {});
  });

  it('runs the VMM in the namespace and checks tun_flags there (IFF_MULTI_QUEUE iff num_queues/2 > 1)', async () => {
    await using dir = await tempDir();
    const kernel = join(dir.path, 'vmlinux');
    await writeFile(kernel, '');
    // The TAPs exist only in the namespace: the checks below prove the VMM reads the namespace's sysfs.
    expect(existsSync('/sys/class/net/tapplain')).toBe(false);
    await using vmm = await ChvProcess.spawn({
      command: sim.command,
      commandArgs: [...sim.args],
      socketPath: join(dir.path, 'api.sock'),
      netns,
      readyTimeoutMs: 20_000,
    });
    const { stdout } = await run('ip', ['netns', 'identify', String(vmm.pid)]);
    expect(stdout.trim()).toBe(netns);
    const cases: [string, number, string | undefined][] = [
      ['tapplain', 2, undefined],
      ['tapplain', 4, 'Error related to the multiqueue support (no support TAP side)'],
      ['tapmq', 4, undefined],
      ['tapmq', 2, 'Error related to the multiqueue support (no support device side)'],
      ['tapmissing', 2, 'Open tap device failed'],
    ];
    for (const [tap, numQueues, failure] of cases) {
      // Two boot vCPUs: the VMM refuses more queue pairs than vCPUs before it looks at the TAP.
      await vmm.client.vmCreate({
        payload: { kernel },
        cpus: { boot_vcpus: 2, max_vcpus: 2 },
        net: [{ tap, num_queues: numQueues }],
      });
      if (failure) {
        const error = await expectChvError(vmm.client.vmBoot(), 'INTERNAL');
        expect(error.messages, `${tap} num_queues=${numQueues}`).toContain(failure);
      } else {
        await vmm.client.vmBoot();
        expect((await vmm.client.vmInfo()).state).toBe('Running');
      }
      await vmm.client.vmDelete();
    }
  }, 60_000);

  it.skipIf(!virtiofsd)(
    'holds the vhost-user connection while running; a real virtiofsd exits at shutdown',
    async () => {
      await using dir = await tempDir();
      const kernel = join(dir.path, 'vmlinux');
      await writeFile(kernel, '');
      const shared = join(dir.path, 'shared');
      await mkdir(shared);
      const fsSocket = join(dir.path, 'fs.sock');
      const daemon = spawn(
        virtiofsd!,
        [`--socket-path=${fsSocket}`, '-o', `source=${shared}`, '-o', 'cache=none'],
        {
          stdio: 'ignore',
        },
      );
      const daemonExit = new Promise<number | null>((resolve) => daemon.once('exit', resolve));
      try {
        for (let i = 0; i < 500 && !existsSync(fsSocket); i++) await new Promise((r) => setTimeout(r, 10));
        await using vmm = await ChvProcess.spawn({
          command: sim.command,
          commandArgs: [...sim.args],
          socketPath: join(dir.path, 'api.sock'),
          readyTimeoutMs: 20_000,
        });
        await vmm.client.vmCreate({
          payload: { kernel },
          memory: { size: 256 * 1024 * 1024, shared: true },
          fs: [{ tag: 'share', socket: fsSocket, num_queues: 1, queue_size: 1024 }],
        });
        await vmm.client.vmBoot();
        await new Promise((r) => setTimeout(r, 200));
        expect(daemon.exitCode).toBeNull();
        await vmm.client.vmShutdown();
        const code = await Promise.race([
          daemonExit,
          new Promise((r) => setTimeout(() => r('still running'), 5_000)),
        ]);
        expect(code).not.toBe('still running');
      } finally {
        daemon.kill('SIGKILL');
      }
    },
    60_000,
  );
});

if (canRun && !virtiofsd) {
  console.warn('skipped: the real virtiofsd test, because no virtiofsd binary was found');
}
