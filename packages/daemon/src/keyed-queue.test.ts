import { describe, expect, it } from 'vitest';
import { KeyedQueue } from './keyed-queue.js';

const tick = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));

describe('KeyedQueue', () => {
  it('runs tasks of one key one at a time in order, and of other keys alongside', async () => {
    const queue = new KeyedQueue();
    const log: string[] = [];
    const task = (name: string, ms: number) => async () => {
      log.push(`${name}+`);
      await tick(ms);
      log.push(`${name}-`);
      return name;
    };
    const results = await Promise.all([
      queue.run('a', task('a1', 20)),
      queue.run('a', task('a2', 1)),
      queue.run('b', task('b1', 5)),
    ]);
    expect(results).toEqual(['a1', 'a2', 'b1']);
    expect(log.indexOf('a1-')).toBeLessThan(log.indexOf('a2+'));
    expect(log.indexOf('b1+')).toBeLessThan(log.indexOf('a1-'));
    await tick();
    expect(queue.size).toBe(0);
  });

  it('runs the next task after a failure, and never starts one whose signal aborted while it waited', async () => {
    const queue = new KeyedQueue();
    const first = queue.run('a', async () => {
      await tick(10);
      throw new Error('first');
    });
    const controller = new AbortController();
    let ran = false;
    const second = queue.run(
      'a',
      async () => {
        ran = true;
      },
      controller.signal,
    );
    const third = queue.run('a', async () => 'third');
    controller.abort(new Error('cancelled'));
    await expect(first).rejects.toThrow('first');
    await expect(second).rejects.toThrow('cancelled');
    await expect(third).resolves.toBe('third');
    expect(ran).toBe(false);
  });
});
