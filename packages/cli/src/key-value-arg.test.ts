import { describe, expect, it } from 'vitest';
import { refusal } from '../test/refusal.js';
import { exitCodeFor } from './describe-error.js';
import { type KeyValueArgOptions, parseKeyValueArgs } from './key-value-arg.js';

const flag = { flag: '--tag', hint: 'e.g. --tag zone=a' } as const;

function refused(values: readonly string[], options: KeyValueArgOptions = flag) {
  return refusal(() => parseKeyValueArgs(values, options));
}

describe('parseKeyValueArgs', () => {
  it('splits each value at the first =, an empty value allowed, in the order given', () => {
    expect(parseKeyValueArgs(['zone=a', 'example.com/tier=', 'expr=a=b', 'n=1'], flag)).toEqual({
      zone: 'a',
      'example.com/tier': '',
      expr: 'a=b',
      n: '1',
    });
    expect(Object.keys(parseKeyValueArgs(['b=1', 'a=2'], flag))).toEqual(['b', 'a']);
    expect(parseKeyValueArgs([], flag)).toEqual({});
  });

  it.each([['zone'], ['zone:a'], [''], ['=a'], ['=']])(
    'refuses %j as not key=value, naming the flag, exit 2',
    (value) => {
      const error = refused([value]);
      expect(error.code).toBe('INVALID_ARGUMENT');
      expect(error.details).toEqual({ field: '--tag', hint: 'e.g. --tag zone=a' });
      expect(error.message).toBe(`--tag: ${JSON.stringify(value)} is not key=value`);
      expect(exitCodeFor(error)).toBe(2);
    },
  );

  it('refuses a key given twice by default, naming the flag', () => {
    const error = refused(['zone=a', 'zone=b']);
    expect(error.details.field).toBe('--tag');
    expect(error.message).toBe('--tag: "zone" is given twice');
    expect(exitCodeFor(error)).toBe(2);
  });

  it('lets the last value win when the flag says so', () => {
    expect(parseKeyValueArgs(['zone=a', 'rack=1', 'zone=b'], { ...flag, repeatedKey: 'last-wins' })).toEqual({
      zone: 'b',
      rack: '1',
    });
  });

  it('keeps keys that are Object.prototype names as plain entries', () => {
    const parsed = parseKeyValueArgs(['__proto__=x', 'constructor=y'], flag);
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
    expect(Object.entries(parsed)).toEqual([
      ['__proto__', 'x'],
      ['constructor', 'y'],
    ]);
  });

  describe('with key and value patterns', () => {
    const checked: KeyValueArgOptions = {
      ...flag,
      key: /^[a-z0-9][a-z0-9._/-]{0,62}$/,
      value: /^[A-Za-z0-9._-]{0,63}$/,
    };

    it('takes what they match', () => {
      expect(parseKeyValueArgs(['zone=a', 'example.com/tier=Front-1', 'empty='], checked)).toEqual({
        zone: 'a',
        'example.com/tier': 'Front-1',
        empty: '',
      });
    });

    it.each([['Zone=a'], ['zone=a b'], ['zone=a=b'], [`${'k'.repeat(64)}=v`], [`k=${'v'.repeat(64)}`]])(
      'refuses %j as not key=value, naming the flag',
      (value) => {
        const error = refused([value], checked);
        expect(error.details.field).toBe('--tag');
        expect(error.message).toBe(`--tag: ${JSON.stringify(value)} is not key=value`);
      },
    );
  });
});
