import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realVmmBinary, realVmmSkipReason } from '@my-hypervisor/chv-client/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage } from '../../src/build.js';
import { formatGuestArgs, parseReadyLine, READY_PREFIX } from '../../src/guest-args.js';
import { cacheDir, debianPackagesUnavailable } from './debian-cache.js';

/*
 * The built image on the real cloud-hypervisor (`MYHV_CLOUD_HYPERVISOR`, with /dev/kvm). On a software KVM the stock
 * kernel prints its early boot log (`Linux version` first) through the early console and then dies (about 45 s in,
 * here: `VcpuRun(InternalError)`); with `MYHV_TEST_HW_KVM=1` (hardware KVM) the test also waits for our init's ready line and the command.
 */

const vmmSkip = realVmmSkipReason();
if (vmmSkip) console.warn(`skipped: booting a built image on the real VMM, because ${vmmSkip}`);
const hardware = process.env.MYHV_TEST_HW_KVM === '1';

/** Waits until `file` holds a line matching `wanted` (or the time is up); returns the whole text. */
async function waitForLine(file: string, wanted: RegExp, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(file, 'utf8').catch(() => '');
    if (text.split('\n').some((line) => wanted.test(line)) || Date.now() > deadline) return text;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe.skipIf(vmmSkip !== undefined)('a built image on the real cloud-hypervisor', () => {
  let dir: string;
  let unavailable: string | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'myhv-image-boot-'));
    unavailable = await debianPackagesUnavailable();
  }, 600_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('shows the kernel banner on the serial port (and, on hardware KVM, the ready line and the command)', async (ctx) => {
    if (unavailable !== undefined) {
      console.log(`skipping: ${unavailable}`);
      ctx.skip(unavailable);
    }
    const { image } = await buildImage({ name: 'boot', storeDir: join(dir, 'images'), cacheDir });
    const serial = join(dir, 'serial.log');
    // earlyprintk: on a software KVM the kernel dies before its serial console driver starts, and without an early
    // console everything it printed until then stays in its log buffer (measured here: an empty serial log).
    const cmdline = `console=ttyS0 earlyprintk=ttyS0 panic=-1 ${formatGuestArgs({ hostname: 'probe', command: 'echo command-ran' })}`;
    const vmm = spawn(
      realVmmBinary()!,
      [
        '--kernel',
        image.kernel,
        '--initramfs',
        image.initramfs,
        '--cmdline',
        cmdline,
        '--cpus',
        'boot=1',
        '--memory',
        'size=512M',
        '--serial',
        `file=${serial}`,
        '--console',
        'off',
      ],
      { stdio: 'ignore' },
    );
    try {
      const banner = await waitForLine(serial, /Linux version \d/, 120_000);
      expect(banner).toMatch(/Linux version \d/);
      if (hardware) {
        const text = await waitForLine(serial, /command-ran/, 60_000);
        const ready = text.split('\n').find((line) => line.startsWith(READY_PREFIX));
        expect(ready && parseReadyLine(ready)).toEqual({ shares: [] });
        expect(text).toContain('command-ran');
      }
    } finally {
      vmm.kill('SIGKILL');
    }
  }, 300_000);
});
