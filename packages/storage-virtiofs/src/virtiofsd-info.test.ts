import { describe, expect, it } from 'vitest';
import {
  C_HELP,
  C_VERSION,
  RUST_HELP,
  RUST_OLD_VERSION,
  RUST_READONLY_LINE,
  RUST_VERSION,
} from './__fixtures__/fake-virtiofsd.js';
import { parseVirtiofsdInfo } from './virtiofsd-info.js';

describe('parseVirtiofsdInfo', () => {
  it('recognises the C build from QEMU (Debian 12)', () => {
    expect(parseVirtiofsdInfo('/usr/lib/qemu/virtiofsd', C_VERSION, C_HELP)).toEqual({
      binary: '/usr/lib/qemu/virtiofsd',
      flavour: 'c',
      version: '7.2.22',
      supportsReadOnly: false,
      sandboxModes: ['namespace', 'chroot'],
    });
  });

  it('recognises a C build without a sandbox option', () => {
    const help = C_HELP.replace(/ {4}-o sandbox=.*\n.*\n/, '');
    expect(parseVirtiofsdInfo('/x', C_VERSION, help)?.sandboxModes).toEqual([]);
  });

  it('recognises the Rust build, with --readonly when its help lists it', () => {
    expect(parseVirtiofsdInfo('/usr/libexec/virtiofsd', RUST_VERSION, RUST_HELP)).toEqual({
      binary: '/usr/libexec/virtiofsd',
      flavour: 'rust',
      version: '1.13.1',
      supportsReadOnly: false,
      sandboxModes: ['namespace', 'chroot', 'none'],
    });
    expect(parseVirtiofsdInfo('/x', RUST_VERSION, RUST_HELP + RUST_READONLY_LINE)?.supportsReadOnly).toBe(
      true,
    );
  });

  it('reads the version of old structopt-based Rust builds ("virtiofsd backend 1.1.0")', () => {
    expect(parseVirtiofsdInfo('/x', RUST_OLD_VERSION, RUST_HELP)?.version).toBe('1.1.0');
  });

  it('is undefined for anything else', () => {
    expect(parseVirtiofsdInfo('/bin/true', '', '')).toBeUndefined();
    expect(
      parseVirtiofsdInfo('/usr/bin/sleep', 'sleep (GNU coreutils) 9.1', 'Usage: sleep NUMBER'),
    ).toBeUndefined();
  });
});
