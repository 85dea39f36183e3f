import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parseVmSpec } from '@my-hypervisor/vm-manager';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test/temp-dir.js';
import { billionLaughs } from '../test/yaml-bomb.js';
import { CliError } from './errors.js';
import { createSpecInput } from './spec-input.js';

async function specFile(name: string, text: string): Promise<string> {
  const dir = await tempDir('myhv-cli-spec-');
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  return promise.then(
    () => undefined,
    (e: unknown) => (CliError.isInstance(e) ? e.code : 'OTHER'),
  );
}

describe('createSpecInput', () => {
  it('turns flags into a VmSpec input the schema accepts', async () => {
    const { input, source } = await createSpecInput(
      'web',
      {
        kernel: '/boot/vmlinux',
        cpus: '2',
        memory: '1G',
        cmdline: 'console=ttyS0',
        disk: ['/img/root.raw', '/img/data.raw:ro'],
        share: ['/srv/www:www', '/srv/a:b:c:ro'],
        forward: ['8080:80', '127.0.0.1:5353:53/udp'],
        queues: '2',
        vmmArg: ['-v'],
      },
      undefined,
    );
    expect(source).toEqual({ kind: 'flags' });
    const spec = parseVmSpec(input);
    expect(spec).toMatchObject({
      name: 'web',
      cpus: 2,
      memory: 1024 * 1024 * 1024,
      disks: [
        { path: '/img/root.raw', readOnly: false },
        { path: '/img/data.raw', readOnly: true },
      ],
      shares: [
        { hostPath: '/srv/www', tag: 'www', readOnly: false },
        { hostPath: '/srv/a:b', tag: 'c', readOnly: true },
      ],
      network: {
        enabled: true,
        queues: 2,
        forwards: [
          { protocol: 'tcp', hostPort: 8080, guestPort: 80 },
          { protocol: 'udp', hostPort: 5353, guestPort: 53, hostIp: '127.0.0.1' },
        ],
      },
      vmm: { extraArgs: ['-v'] },
    });
  });

  it('--no-network disables the network', async () => {
    const { input } = await createSpecInput('a', { kernel: '/k', network: false }, undefined);
    expect(parseVmSpec(input).network.enabled).toBe(false);
  });

  it('reads YAML and JSON spec files and stdin', async () => {
    const yaml = await specFile('vm.yaml', 'name: web\nkernel: /boot/vmlinux\nmemory: 1G\n');
    expect((await createSpecInput(undefined, { file: yaml }, undefined)).input).toEqual({
      name: 'web',
      kernel: '/boot/vmlinux',
      memory: '1G',
    });
    const json = await specFile('vm.json', '{"name":"db","kernel":"/k","cpus":4}');
    expect((await createSpecInput(undefined, { file: json }, undefined)).input).toMatchObject({ cpus: 4 });
    const fromStdin = await createSpecInput(
      undefined,
      { file: '-' },
      Readable.from(['name: s\nkernel: /k\n']),
    );
    expect(fromStdin.input).toEqual({ name: 's', kernel: '/k' });
  });

  it('refuses a spec file combined with spec flags or a NAME', async () => {
    const yaml = await specFile('vm.yaml', 'name: web\nkernel: /k\n');
    expect(await codeOf(createSpecInput(undefined, { file: yaml, memory: '1G' }, undefined))).toBe('USAGE');
    expect(await codeOf(createSpecInput('web', { file: yaml }, undefined))).toBe('USAGE');
    expect(await codeOf(createSpecInput(undefined, { file: yaml, network: false }, undefined))).toBe('USAGE');
  });

  it('rejects bad syntax before the schema sees it', async () => {
    expect(await codeOf(createSpecInput(undefined, {}, undefined))).toBe('USAGE');
    expect(await codeOf(createSpecInput('a', {}, undefined))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(createSpecInput('a', { kernel: '/k', cpus: 'two' }, undefined))).toBe(
      'INVALID_ARGUMENT',
    );
    expect(await codeOf(createSpecInput('a', { kernel: '/k', share: ['/srv'] }, undefined))).toBe(
      'INVALID_ARGUMENT',
    );
    expect(await codeOf(createSpecInput('a', { kernel: '/k', network: false, queues: '2' }, undefined))).toBe(
      'USAGE',
    );
    const bad = await specFile('bad.yaml', 'name: [unclosed\n');
    expect(await codeOf(createSpecInput(undefined, { file: bad }, undefined))).toBe('INVALID_ARGUMENT');
    const list = await specFile('list.yaml', '- name: a\n');
    expect(await codeOf(createSpecInput(undefined, { file: list }, undefined))).toBe('INVALID_ARGUMENT');
    const dup = await specFile('dup.yaml', 'name: a\nname: b\nkernel: /k\n');
    expect(await codeOf(createSpecInput(undefined, { file: dup }, undefined))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(createSpecInput(undefined, { file: '/nonexistent.yaml' }, undefined))).toBe(
      'INVALID_ARGUMENT',
    );
  });

  it('refuses a YAML alias bomb quickly, naming the file', async () => {
    const bomb = await specFile('bomb.yaml', billionLaughs(10));
    const started = performance.now();
    const error = await createSpecInput(undefined, { file: bomb }, undefined).catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: `--file ${bomb}` } });
    // An alias before its anchor is bad input too, not an unexpected error.
    const early = await specFile('early.yaml', 'name: *n\nkernel: &n /k\n');
    expect(
      await createSpecInput(undefined, { file: early }, undefined).catch((e: unknown) => e),
    ).toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: { field: `--file ${early}` },
    });
  });

  it('refuses a spec over 1 MiB, and stops reading stdin there', async () => {
    const big = await specFile('big.yaml', `name: a\nkernel: /k\n#${'x'.repeat(1024 * 1024)}\n`);
    expect(await createSpecInput(undefined, { file: big }, undefined).catch((e: unknown) => e)).toMatchObject(
      {
        code: 'INVALID_ARGUMENT',
        details: { field: '--file' },
      },
    );
    let pulled = 0;
    function* endless() {
      // 64 MiB of comment lines; reading stops after about 1 MiB of them.
      for (let i = 0; i < 1024; i++) {
        pulled += 1;
        yield `#${'x'.repeat(64 * 1024 - 2)}\n`;
      }
    }
    const fromStdin = await createSpecInput(undefined, { file: '-' }, Readable.from(endless())).catch(
      (e: unknown) => e,
    );
    expect(fromStdin).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: '--file' } });
    expect(pulled).toBeLessThanOrEqual(18);
  });

  it('reads no more than the limit of a file without end', async () => {
    // /dev/zero reports size 0: only a bounded read stops (an unbounded one would fill the memory).
    expect(await codeOf(createSpecInput(undefined, { file: '/dev/zero' }, undefined))).toBe(
      'INVALID_ARGUMENT',
    );
  });
});
