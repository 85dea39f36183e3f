import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChvProcess, type ChvProcessSpawnOptions } from '@my-hypervisor/chv-client';
import {
  parseProbeGuestOutput,
  realVmmBinary,
  realVmmSkipReason,
  simulatorCommand,
  writeProbeGuest,
} from '@my-hypervisor/chv-client/testing';
import type { PreparedShare } from '@my-hypervisor/storage';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { C_VIRTIOFSD_PATH, VirtioFsStorage } from '../../src/index.js';

// The real virtiofsd with a real vhost-user front-end: the simulator (which connects like the VMM does) and, where
// this host can run guests, the real cloud-hypervisor booting the probe guest.
const isRoot = process.getuid?.() === 0;
const skip = !existsSync(C_VIRTIOFSD_PATH)
  ? `${C_VIRTIOFSD_PATH} is missing (apt-get install --no-install-recommends qemu-system-common)`
  : !isRoot
    ? 'virtiofsd must run as root'
    : undefined;
if (skip) console.warn(`skipped: virtiofsd with a VMM front-end, because ${skip}`);

const sim = simulatorCommand();
const realSkip = realVmmSkipReason();
if (!skip && realSkip) console.warn(`skipped: virtiofsd with the real cloud-hypervisor, because ${realSkip}`);
const frontEnds: {
  name: string;
  real: boolean;
  options: Pick<ChvProcessSpawnOptions, 'command' | 'commandArgs'>;
}[] = [
  { name: 'the simulator', real: false, options: { command: sim.command, commandArgs: [...sim.args] } },
  ...(realSkip
    ? []
    : [{ name: 'the real cloud-hypervisor', real: true, options: { command: realVmmBinary()! } }]),
];

const alive = (pid: number | undefined) => {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, ms = 5_000) {
  for (const started = performance.now(); performance.now() - started < ms; await sleep(10))
    if (await check()) return;
  throw new Error(`timed out after ${ms} ms waiting until ${what}`);
}

describe.skipIf(skip).each(frontEnds)('virtiofsd serving $name', ({ real, options }) => {
  let dir: string;
  let storage: VirtioFsStorage;
  beforeEach(async () => {
    dir = await mkdtemp('/tmp/mhv-fe-');
    await mkdir(join(dir, 'share'));
    storage = new VirtioFsStorage({ runDir: join(dir, 'fs'), binary: C_VIRTIOFSD_PATH });
  });
  afterEach(async () => {
    await storage.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Boots one VM with `share` attached; resolves once the VMM has connected (and the guest printed, if real). */
  async function bootWith(share: PreparedShare, n: number) {
    const kernel = await writeProbeGuest(join(dir, 'probe.elf'));
    const serial = join(dir, `serial-${n}.log`);
    const vmm = await ChvProcess.spawn({ ...options, socketPath: join(dir, `api-${n}.sock`) });
    await vmm.client.vmCreate({
      payload: { kernel, cmdline: 'console=ttyS0' },
      memory: { size: 64 * 1024 * 1024, shared: true },
      fs: [{ tag: share.tag, socket: share.socketPath, num_queues: 1, queue_size: 1024 }],
      serial: { mode: 'File', file: serial },
      console: { mode: 'Off' },
    });
    await vmm.client.vmBoot();
    if (real) {
      await waitUntil(
        'the probe guest printed its marker',
        async () => parseProbeGuestOutput(await readFile(serial, 'utf8').catch(() => '')).booted,
      );
    }
    return vmm;
  }

  it('is ready before boot, serves the VM, exits when the VMM stops, and a fresh one serves the next start', async () => {
    const spec = { id: 'vm1-data', hostPath: join(dir, 'share'), tag: 'data' };
    const first = await storage.prepare(spec);
    // Ready means listening (not connectable-by-probe: virtiofsd serves one front-end and then exits).
    expect(existsSync(first.socketPath)).toBe(true);
    const vmm = await bootWith(first, 1);
    expect((await vmm.client.vmInfo()).config.fs?.[0]).toMatchObject({
      tag: 'data',
      socket: first.socketPath,
    });
    expect(alive(first.pid)).toBe(true);

    await vmm.stop({ gracefulMs: 0 });
    await vmm.close();
    // Its one front-end is gone: the daemon exits by itself.
    await waitUntil('virtiofsd exited after its front-end', () => !alive(first.pid));
    const released = await storage.release(first);
    expect(released.stopped).toBe(false);

    // Starting the VM again needs a fresh daemon for the same share.
    const second = await storage.prepare(spec);
    expect(second.pid).not.toBe(first.pid);
    const again = await bootWith(second, 2);
    expect(alive(second.pid)).toBe(true);
    await again.stop({ gracefulMs: 0 });
    await again.close();
    await waitUntil('the second virtiofsd exited', () => !alive(second.pid));
    await storage.release(second);
    expect(await storage.list()).toEqual([]);
  });
});
