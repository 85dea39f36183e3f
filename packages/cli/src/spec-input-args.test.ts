import { parseVmSpec, VmManagerError } from '@my-hypervisor/vm-manager';
import { describe, expect, it } from 'vitest';
import { parseShareArg } from './commands/vm-devices.js';
import { exitCodeFor } from './describe-error.js';
import { CliError } from './errors.js';
import { withSpecHint } from './spec-hints.js';
import { createSpecInput } from './spec-input.js';

type ArgFlags = { share?: string[]; disk?: string[]; label?: string[] };

// --share, --disk and --label: what each spelling becomes, and what is refused (naming the flag) instead of misread.
async function flagSpec(flags: ArgFlags) {
  const { input } = await createSpecInput('a', { kernel: '/k', ...flags }, undefined);
  return parseVmSpec(input);
}

async function refusedField(flags: ArgFlags): Promise<unknown> {
  const error = await createSpecInput('a', { kernel: '/k', ...flags }, undefined).catch((e: unknown) => e);
  expect(CliError.isInstance(error) && error.code, String(error)).toBe('INVALID_ARGUMENT');
  return (error as CliError).details.field;
}

describe('--share dir:tag[:ro|:rw]', () => {
  it.each([
    ['/srv/www:www', { hostPath: '/srv/www', tag: 'www', readOnly: false }],
    ['/srv/www:www:ro', { hostPath: '/srv/www', tag: 'www', readOnly: true }],
    ['/srv/www:www:rw', { hostPath: '/srv/www', tag: 'www', readOnly: false }],
    ['/srv/a:b:c:ro', { hostPath: '/srv/a:b', tag: 'c', readOnly: true }],
    ['/srv/a:b:c:rw', { hostPath: '/srv/a:b', tag: 'c', readOnly: false }],
    // A last field starting with '/' is where a VM made from an image mounts the share.
    ['/srv/www:www:/var/www', { hostPath: '/srv/www', tag: 'www', readOnly: false, guestPath: '/var/www' }],
    ['/srv/www:www:ro:/var/www', { hostPath: '/srv/www', tag: 'www', readOnly: true, guestPath: '/var/www' }],
    ['/srv/a:b:c:rw:/mnt/c', { hostPath: '/srv/a:b', tag: 'c', readOnly: false, guestPath: '/mnt/c' }],
  ])('%s', async (value, share) => {
    expect((await flagSpec({ share: [value] })).shares).toEqual([share]);
  });

  it.each([
    ['/srv/data:data:yes'],
    ['/srv/data:data:RO'],
    ['/srv/data:data:readonly'],
    ['/srv/data:data:'],
    ['/srv/data::ro'],
    [':data'],
    ['/srv/data:'],
    ['/srv/data'],
    ['/srv/a:b:c'],
    ['/srv/data:data:yes:/mnt'],
    ['/srv/a:b:c:/mnt'],
    [':data:/mnt'],
  ])('refuses %s naming --share', async (value) => {
    expect(await refusedField({ share: [value] })).toBe('--share');
  });
});

describe('vm share add NAME DIR:TAG[:ro|rw][:/guest/path]', () => {
  it('takes the syntax of --share, guest path included, and names its own argument when refusing', async () => {
    expect(parseShareArg('/srv/www:www:ro:/var/www')).toEqual({
      hostPath: '/srv/www',
      tag: 'www',
      readOnly: true,
      guestPath: '/var/www',
    });
    const error = (() => {
      try {
        return parseShareArg('/srv/data:data:yes');
      } catch (e) {
        return e;
      }
    })();
    expect(CliError.isInstance(error) && error.details.field).toBe('share');
  });
});

describe('--disk path[:ro|:rw]', () => {
  it.each([
    ['/img/a.raw', { path: '/img/a.raw', readOnly: false }],
    ['/img/a.raw:ro', { path: '/img/a.raw', readOnly: true }],
    ['/img/a.raw:rw', { path: '/img/a.raw', readOnly: false }],
    // A path may contain colons: anything but :ro and :rw stays part of it.
    ['/img/a:b.raw', { path: '/img/a:b.raw', readOnly: false }],
  ])('%s', async (value, disk) => {
    expect((await flagSpec({ disk: [value] })).disks).toEqual([disk]);
  });
});

describe('--label key=value', () => {
  it("becomes the spec's labels, split at the first =, an empty value allowed", async () => {
    const spec = await flagSpec({ label: ['app=web', 'myhv.cluster=prod-1', 'example.com/tier=', 'n=1'] });
    expect(spec.labels).toEqual({ app: 'web', 'myhv.cluster': 'prod-1', 'example.com/tier': '', n: '1' });
    expect((await flagSpec({})).labels).toBeUndefined();
  });

  it.each([['app'], ['app:web'], [''], ['=web']])('refuses %j naming --label, exit 2', async (value) => {
    const error = await createSpecInput('a', { kernel: '/k', label: [value] }, undefined).catch(
      (e: unknown) => e,
    );
    expect(CliError.isInstance(error) && error.details.field).toBe('--label');
    expect(String(error)).toContain('is not key=value');
    expect(exitCodeFor(error)).toBe(2);
  });

  it('refuses a key given twice rather than keep one value', async () => {
    expect(await refusedField({ label: ['app=web', 'app=db'] })).toBe('--label');
  });

  it('leaves keys and values to the spec schema, whose error points back at --label', async () => {
    // 'a=b=c' splits into key 'a', value 'b=c': a value the schema refuses.
    for (const [label, field] of [
      ['App=web', 'labels'],
      ['a=b=c', 'labels.a'],
    ] as const) {
      const { input } = await createSpecInput('a', { kernel: '/k', label: [label] }, undefined);
      const error = (() => {
        try {
          return parseVmSpec(input);
        } catch (e) {
          return e;
        }
      })();
      expect(VmManagerError.isInstance(error) && error.details.field, label).toBe(field);
      const hinted = withSpecHint(error, { kind: 'flags' }) as CliError;
      expect(hinted.details.hint, label).toMatch(/^fix --label key=value/);
      expect(exitCodeFor(hinted)).toBe(2);
    }
  });

  it('cannot be combined with a spec file', async () => {
    const error = await createSpecInput(
      undefined,
      { file: '/spec.yaml', label: ['app=web'] },
      undefined,
    ).catch((e: unknown) => e);
    expect(CliError.isInstance(error) && error.code).toBe('USAGE');
    expect(String(error)).toContain('--label');
  });
});
