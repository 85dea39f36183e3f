import { StorageError } from '@my-hypervisor/storage';
import { describe, expect, it } from 'vitest';
import { buildVirtiofsdArgs, type VirtiofsdArgsInput } from './virtiofsd-args.js';
import type { VirtiofsdInfo } from './virtiofsd-info.js';

const c: Pick<VirtiofsdInfo, 'flavour' | 'supportsReadOnly' | 'sandboxModes'> = {
  flavour: 'c',
  supportsReadOnly: false,
  sandboxModes: ['namespace', 'chroot'],
};
const rust: typeof c = {
  flavour: 'rust',
  supportsReadOnly: true,
  sandboxModes: ['namespace', 'chroot', 'none'],
};
const oldRust: typeof c = { ...rust, supportsReadOnly: false };
const input: VirtiofsdArgsInput = {
  socketPath: '/run/myhv/vm1-home.sock',
  hostPath: '/srv/home',
  cache: 'never',
  readOnly: false,
};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return StorageError.isInstance(error) ? `${error.code}:${String(error.details.field)}` : String(error);
  }
  return undefined;
}

describe('buildVirtiofsdArgs: C virtiofsd', () => {
  it('uses -o source= and maps cache never to none', () => {
    expect(buildVirtiofsdArgs(c, input)).toEqual([
      '--socket-path=/run/myhv/vm1-home.sock',
      '-o',
      'source=/srv/home',
      '-o',
      'cache=none',
    ]);
  });

  it('adds sandbox, thread pool and xattr in its syntax', () => {
    expect(
      buildVirtiofsdArgs(c, { ...input, cache: 'always', sandbox: 'chroot', threadPoolSize: 4, xattr: true }),
    ).toEqual([
      '--socket-path=/run/myhv/vm1-home.sock',
      '-o',
      'source=/srv/home',
      '-o',
      'cache=always',
      '-o',
      'sandbox=chroot',
      '--thread-pool-size=4',
      '-o',
      'xattr',
    ]);
  });

  it('refuses what it cannot do instead of serving something else', () => {
    expect(codeOf(() => buildVirtiofsdArgs(c, { ...input, readOnly: true }))).toBe('UNSUPPORTED:readOnly');
    expect(codeOf(() => buildVirtiofsdArgs(c, { ...input, sandbox: 'none' }))).toBe('UNSUPPORTED:sandbox');
  });

  it('refuses a path whose comma would smuggle in -o options', () => {
    expect(codeOf(() => buildVirtiofsdArgs(c, { ...input, hostPath: '/srv/a,sandbox=chroot' }))).toBe(
      'INVALID_ARGUMENT:hostPath',
    );
  });
});

describe('buildVirtiofsdArgs: Rust virtiofsd', () => {
  it('uses --shared-dir and --cache=never', () => {
    expect(buildVirtiofsdArgs(rust, input)).toEqual([
      '--socket-path=/run/myhv/vm1-home.sock',
      '--shared-dir=/srv/home',
      '--cache=never',
    ]);
  });

  it('adds sandbox, thread pool, xattr and --readonly', () => {
    expect(
      buildVirtiofsdArgs(rust, {
        ...input,
        hostPath: '/srv/a,b',
        cache: 'auto',
        readOnly: true,
        sandbox: 'none',
        threadPoolSize: 0,
        xattr: true,
      }),
    ).toEqual([
      '--socket-path=/run/myhv/vm1-home.sock',
      '--shared-dir=/srv/a,b',
      '--cache=auto',
      '--sandbox=none',
      '--thread-pool-size=0',
      '--xattr',
      '--readonly',
    ]);
  });

  it('rejects read-only on builds without --readonly and a bad thread pool size', () => {
    expect(codeOf(() => buildVirtiofsdArgs(oldRust, { ...input, readOnly: true }))).toBe(
      'UNSUPPORTED:readOnly',
    );
    expect(codeOf(() => buildVirtiofsdArgs(rust, { ...input, threadPoolSize: -1 }))).toBe(
      'INVALID_ARGUMENT:threadPoolSize',
    );
  });
});
