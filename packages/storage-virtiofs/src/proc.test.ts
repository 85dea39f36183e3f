import { describe, expect, it } from 'vitest';
import { isUnixSocketListening, parseProcNetUnix } from './proc.js';

const sample = `Num       RefCount Protocol Flags    Type St Inode Path
0000000042d4fbb5: 00000003 00000000 00000000 0001 03 17151
00000000299224e0: 00000002 00000000 00010000 0001 01 17819 /run/myhv/vm1-home.sock
00000000299224e1: 00000002 00000000 00000000 0001 01 17820 /run/myhv/bound-only.sock
00000000299224e2: 00000003 00000000 00000000 0001 03 17821 /run/myhv/vm1-home.sock
00000000299224e3: 00000002 00000000 00010000 0001 01 17822 /run/my dir/with space.sock
00000000299224e4: 00000002 00000000 00010000 0001 01 17823 @abstract
`;

describe('parseProcNetUnix', () => {
  it('reads flags, state, inode and paths (with spaces), skipping unnamed sockets', () => {
    const entries = parseProcNetUnix(sample);
    expect(entries.map((e) => e.path)).toEqual([
      '/run/myhv/vm1-home.sock',
      '/run/myhv/bound-only.sock',
      '/run/myhv/vm1-home.sock',
      '/run/my dir/with space.sock',
      '@abstract',
    ]);
    expect(entries[0]).toEqual({
      flags: 0x10000,
      state: 1,
      inode: 17819,
      path: '/run/myhv/vm1-home.sock',
      listening: true,
    });
    // Bound but not listening, and a connected socket on the same path: neither is listening.
    expect(entries[1]?.listening).toBe(false);
    expect(entries[2]?.listening).toBe(false);
    expect(entries[3]?.listening).toBe(true);
  });
});

describe('isUnixSocketListening', () => {
  it('is false for a path nobody listens on', async () => {
    expect(await isUnixSocketListening('/nonexistent/never.sock')).toBe(false);
  });
});
