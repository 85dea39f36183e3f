import { describe, expect, it } from 'vitest';
import { jsonSafeRecord } from './json-safe.js';

describe('jsonSafeRecord', () => {
  it('keeps JSON values, stringifies what JSON cannot carry, drops what JSON drops', () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(
      jsonSafeRecord({
        field: 'cpus',
        n: 1,
        list: [1, 'a'],
        big: 10n,
        cycle,
        fn: () => 1,
        date: new Date(0),
      }),
    ).toEqual({
      field: 'cpus',
      n: 1,
      list: [1, 'a'],
      big: '10',
      cycle: '[object Object]',
      date: '1970-01-01T00:00:00.000Z',
    });
  });
});
