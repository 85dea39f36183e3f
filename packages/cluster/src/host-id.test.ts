import { describe, expect, it } from 'vitest';
import { isHostId } from './core.js';

describe('isHostId', () => {
  it.each([['a'], ['host-a'], ['node_1.example'], ['H0'], ['9'], ['a'.repeat(63)]])('takes %j', (id) => {
    expect(isHostId(id)).toBe(true);
  });

  it.each([
    [''],
    ['a'.repeat(64)],
    ['no spaces'],
    ['-lead'],
    ['.lead'],
    ['_lead'],
    ['a/b'],
    ['a:b'],
    ['é'],
    ['a\n'],
  ])('refuses %j', (id) => {
    expect(isHostId(id)).toBe(false);
  });
});
