import { describe, expect, it } from 'vitest';
import { StorageError } from './errors.js';
import { MAX_SOCKET_PATH_BYTES, shareSocketPath } from './socket-path.js';

describe('shareSocketPath', () => {
  it('names the socket after the id', () => {
    expect(shareSocketPath('/run/myhv', 'vm1-home')).toBe('/run/myhv/vm1-home.sock');
  });

  it('accepts a socket path of 107 bytes and rejects 108 (sun_path holds 108 with the NUL)', () => {
    const dir = `/${'d'.repeat(MAX_SOCKET_PATH_BYTES - '/x.sock'.length - 1)}`;
    expect(Buffer.byteLength(shareSocketPath(dir, 'x'))).toBe(107);
    let error: unknown;
    try {
      shareSocketPath(dir, 'xy');
    } catch (e) {
      error = e;
    }
    expect(StorageError.isInstance(error) && error.code).toBe('INVALID_ARGUMENT');
    expect((error as StorageError).details.field).toBe('id');
  });
});
