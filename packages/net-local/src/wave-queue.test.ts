import { describe, expect, it, vi } from 'vitest';
import { WaveQueue } from './wave-queue.js';

describe('WaveQueue', () => {
  it('collects jobs across awaits of the same turn into one wave, and runs waves one at a time', async () => {
    const waves: number[][] = [];
    let running = 0;
    const queue = new WaveQueue<number>(async (jobs) => {
      running++;
      expect(running).toBe(1);
      waves.push(jobs);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
    });
    await Promise.all(
      [1, 2, 3].map(async (n) => {
        await Promise.resolve();
        await Promise.resolve();
        queue.submit(n);
      }),
    );
    await new Promise((resolve) => setImmediate(resolve));
    queue.submit(4);
    queue.submit(5);
    await vi.waitFor(() => expect(waves).toHaveLength(2));
    expect(waves).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
  });

  it('withdraw takes a job out only before its wave starts', async () => {
    const waves: string[][] = [];
    const queue = new WaveQueue<string>(async (jobs) => {
      waves.push(jobs);
    });
    queue.submit('a');
    queue.submit('b');
    expect(queue.withdraw('a')).toBe(true);
    await vi.waitFor(() => expect(waves).toHaveLength(1));
    expect(queue.withdraw('b')).toBe(false);
    expect(waves).toEqual([['b']]);
  });
});
