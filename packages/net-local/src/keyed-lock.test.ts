import { describe, expect, it } from 'vitest';
import { KeyedLock } from './keyed-lock.js';

describe('KeyedLock', () => {
  it('runs tasks of one key in order, even after a failure, and other keys alongside', async () => {
    const lock = new KeyedLock();
    const order: string[] = [];
    const task =
      (name: string, ms: number, fail = false) =>
      async () => {
        order.push(`start ${name}`);
        await new Promise((resolve) => setTimeout(resolve, ms));
        order.push(`end ${name}`);
        if (fail) throw new Error(name);
      };
    await Promise.allSettled([
      lock.run('a', task('a1', 10, true)),
      lock.run('a', task('a2', 1)),
      lock.run('b', task('b1', 1)),
    ]);
    expect(order.indexOf('end a1')).toBeLessThan(order.indexOf('start a2'));
    expect(order.indexOf('start b1')).toBeLessThan(order.indexOf('end a1'));
  });
});
