import { AssertionError } from 'node:assert';
import { describe, expect, it } from 'vitest';
import { NetOpsError } from '../errors.js';
import { expectNetOpsError } from './expect-net-ops-error.js';

describe('expectNetOpsError', () => {
  it('returns the error when the code matches (one or several)', async () => {
    const error = new NetOpsError('CONFLICT', 'x');
    expect(await expectNetOpsError(Promise.reject(error), 'CONFLICT')).toBe(error);
    expect(await expectNetOpsError(Promise.reject(error), ['NOT_FOUND', 'CONFLICT'])).toBe(error);
  });

  it.each([
    ['a resolved promise', () => Promise.resolve('ok')],
    ['another code', () => Promise.reject(new NetOpsError('NOT_FOUND', 'x'))],
    ['a plain Error', () => Promise.reject(new Error('x'))],
    ['a TypeError', () => Promise.reject(new TypeError('x'))],
  ])('fails with an AssertionError for %s', async (_what, make) => {
    await expect(expectNetOpsError(make(), 'CONFLICT')).rejects.toBeInstanceOf(AssertionError);
  });
});
