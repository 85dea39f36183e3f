import { describe, expect, it } from 'vitest';
import { raceSignal } from './race-signal.js';

const aborted = (signal: AbortSignal) => new Error(`aborted: ${String(signal.reason?.name)}`);

describe('raceSignal', () => {
  it('settles like the promise without a signal or abort', async () => {
    expect(await raceSignal(Promise.resolve(1), undefined, aborted)).toBe(1);
    expect(await raceSignal(Promise.resolve(2), new AbortController().signal, aborted)).toBe(2);
    await expect(
      raceSignal(Promise.reject(new Error('x')), new AbortController().signal, aborted),
    ).rejects.toThrow('x');
  });

  it("rejects with the caller's error as soon as the signal aborts, leaving the work running", async () => {
    const controller = new AbortController();
    let finished = false;
    const work = new Promise<void>((resolve) =>
      setTimeout(() => {
        finished = true;
        resolve();
      }, 30),
    );
    const raced = raceSignal(work, controller.signal, aborted);
    controller.abort();
    await expect(raced).rejects.toThrow('aborted: AbortError');
    expect(finished).toBe(false);
    await work;
    expect(finished).toBe(true);
  });

  it('an already-aborted signal rejects at once', async () => {
    await expect(raceSignal(new Promise(() => {}), AbortSignal.abort(), aborted)).rejects.toThrow('aborted');
  });
});
