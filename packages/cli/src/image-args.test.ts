import { spawn } from 'node:child_process';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageStore } from '@my-hypervisor/guest-image';
import { parseVmSpec } from '@my-hypervisor/vm-manager';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test/temp-dir.js';
import { CliError } from './errors.js';
import { applyImage, parseImageName } from './images.js';
import { createSpecInput } from './spec-input.js';
import { formatReady, parseReadyTimeout, readyWait, waitForReady } from './wait-ready.js';

function cliError(fn: () => unknown): CliError {
  try {
    fn();
  } catch (error) {
    expect(CliError.isInstance(error), String(error)).toBe(true);
    return error as CliError;
  }
  throw new Error('did not throw');
}

async function rejected(promise: Promise<unknown>): Promise<CliError> {
  const error = await promise.then(
    () => new Error('did not reject'),
    (e: unknown) => e,
  );
  expect(CliError.isInstance(error), String(error)).toBe(true);
  return error as CliError;
}

describe('vm create --image / --command', () => {
  it('--image takes the place of --kernel; the spec records the image and the command', async () => {
    const { input } = await createSpecInput('web', { image: 'default', command: 'echo hi' }, undefined);
    expect(input).toMatchObject({ name: 'web', image: 'default', command: 'echo hi' });
    expect(input.kernel).toBeUndefined();
  });

  it('refuses --image with --kernel or --initramfs, and --command without --image (usage, exit 2)', async () => {
    for (const flags of [
      { image: 'default', kernel: '/k' },
      { image: 'default', initramfs: '/i' },
      { kernel: '/k', command: 'true' },
    ]) {
      expect((await rejected(createSpecInput('web', flags, undefined))).code).toBe('USAGE');
    }
  });

  it('still says --kernel is missing when neither is given', async () => {
    const error = await rejected(createSpecInput('web', {}, undefined));
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: '--kernel' } });
  });

  it('--file cannot be combined with --image or --command', async () => {
    const error = await rejected(
      createSpecInput(undefined, { file: '/x.yaml', image: 'default' }, undefined),
    );
    expect(error.code).toBe('USAGE');
  });
});

describe('image names', () => {
  it.each(['Default', '-x', '1abc', 'a'.repeat(33), '../etc', 'a b', ''])(
    'refuses %j naming the argument (exit 2)',
    (name) => {
      expect(cliError(() => parseImageName(name, '--image'))).toMatchObject({
        code: 'INVALID_ARGUMENT',
        details: { field: '--image' },
      });
    },
  );

  it('accepts the store names', () => {
    expect(parseImageName('default')).toBe('default');
    expect(parseImageName('debian-12')).toBe('debian-12');
  });
});

describe('applyImage', () => {
  it("fills kernel and initramfs from the store's image; a bad name is refused before the store is read", async () => {
    const dir = await tempDir('myhv-cli-images-');
    const store = new ImageStore({ dir: join(dir, 'images') });
    const error = await rejected(applyImage({ name: 'web', image: 'Bad' }, store, '--image'));
    expect(error.details.field).toBe('--image');
    // An image that is not there: the store's NOT_FOUND (exit 1), not a spec error.
    const missing = await applyImage({ name: 'web', image: 'nope' }, store, '--image').catch(
      (e: unknown) => e,
    );
    expect((missing as { code?: string }).code).toBe('NOT_FOUND');
    // A spec that names its own kernel keeps it.
    const own = { name: 'web', image: 'x', kernel: '/k' };
    expect(await applyImage(own, store, 'image')).toBeUndefined();
    expect(own.kernel).toBe('/k');
  });
});

describe('--wait-ready / --ready-timeout', () => {
  it.each([
    ['60', 60_000],
    ['90s', 90_000],
    ['1500ms', 1500],
    ['2m', 120_000],
    ['1h', 3_600_000],
  ])('%s', (text, ms) => {
    expect(parseReadyTimeout(text)).toBe(ms);
  });

  it.each(['0', '0s', '-1', '1.5s', 'soon', '25h', ''])('refuses %j naming --ready-timeout', (text) => {
    expect(cliError(() => parseReadyTimeout(text))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: { field: '--ready-timeout' },
    });
  });

  it('waits only when asked, 60 s unless told', () => {
    expect(readyWait({})).toBeUndefined();
    expect(readyWait({ waitReady: true })).toEqual({ timeoutMs: 60_000 });
    expect(readyWait({ waitReady: true, readyTimeout: '5s' })).toEqual({ timeoutMs: 5000 });
  });

  it('returns what the ready line says once the guest prints it, skipping other console lines', async () => {
    const dir = await tempDir('myhv-cli-ready-');
    const log = join(dir, 'serial.log');
    await writeFile(log, 'Linux version 6.1\nmyhv-probe: cmdline=myhv-guest: ready ip=1.2.3.4 shares=none\n');
    const waiting = waitForReady(log, { timeoutMs: 10_000, vm: 'web' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Split across writes, with a carriage return: still one line.
    await appendFile(log, 'myhv-guest: ready ip=10.62.0.5 ');
    await appendFile(log, 'shares=data,logs\r\nmyhv-guest: ready ip=10.62.0.9 shares=none\n');
    const ready = await waiting;
    expect(ready).toEqual({ ip: '10.62.0.5', shares: ['data', 'logs'] });
    expect(formatReady(ready)).toBe('ready ip=10.62.0.5 shares=data,logs');
    expect(formatReady({ shares: [] })).toBe('ready ip=none shares=none');
  });

  it('times out with TIMEOUT (exit 1) when no ready line comes, also when the log never appears', async () => {
    const dir = await tempDir('myhv-cli-ready-');
    const log = join(dir, 'serial.log');
    await writeFile(log, 'myhv-probe: booted\n');
    expect(await rejected(waitForReady(log, { timeoutMs: 300, vm: 'web' }))).toMatchObject({
      code: 'TIMEOUT',
      details: { vm: 'web' },
    });
    await mkdir(join(dir, 'empty'));
    const absent = join(dir, 'empty', 'serial.log');
    expect((await rejected(waitForReady(absent, { timeoutMs: 300, vm: 'web' }))).code).toBe('TIMEOUT');
  });

  it('ends at once with FAILED when the VMM exits before the ready line, not at the timeout', async () => {
    const dir = await tempDir('myhv-cli-ready-');
    const vmm = spawn('sleep', ['0.3'], { stdio: 'ignore' });
    const started = Date.now();
    const error = await rejected(
      waitForReady(join(dir, 'serial.log'), { timeoutMs: 20_000, vm: 'web', vmm: { pid: vmm.pid! } }),
    );
    expect(error).toMatchObject({ code: 'FAILED', details: { vm: 'web' } });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('stops waiting on an interrupt (INTERRUPTED, exit 130)', async () => {
    const dir = await tempDir('myhv-cli-ready-');
    const controller = new AbortController();
    const waiting = waitForReady(join(dir, 'serial.log'), {
      timeoutMs: 10_000,
      signal: controller.signal,
      vm: 'web',
    });
    controller.abort();
    expect((await rejected(waiting)).code).toBe('INTERRUPTED');
  });
});

describe('a spec made from an image', () => {
  it('parses with the guest path of a --share', async () => {
    const { input } = await createSpecInput(
      'web',
      { image: 'default', share: ['/srv/data:data:ro:/data'] },
      undefined,
    );
    const spec = parseVmSpec({ ...input, kernel: '/var/lib/myhv/images/default/vmlinux' });
    expect(spec).toMatchObject({
      image: 'default',
      shares: [{ hostPath: '/srv/data', tag: 'data', readOnly: true, guestPath: '/data' }],
    });
  });
});
