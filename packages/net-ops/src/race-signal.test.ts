import { describe, expect, it } from 'vitest';
import { raceSignal } from './race-signal.js';
import { expectNetOpsError } from './testing/index.js';

describe('raceSignal', () => {
  it('settles like the promise without a signal or abort', async () => {
    expect(await raceSignal(Promise.resolve(1), undefined)).toBe(1);
    expect(await raceSignal(Promise.resolve(2), new AbortController().signal)).toBe(2);
    await expect(raceSignal(Promise.reject(new Error('x')), new AbortController().signal)).rejects.toThrow(
      'x',
    );
  });

  it('rejects ABORTED as soon as the signal aborts, leaving the work running', async () => {
    const controller = new AbortController();
    let finished = false;
    const work = new Promise<void>((resolve) =>
      setTimeout(() => {
        finished = true;
        resolve();
      }, 30),
    );
    const raced = raceSignal(work, controller.signal);
    controller.abort();
    await expectNetOpsError(raced, 'ABORTED');
    expect(finished).toBe(false);
    await work;
    expect(finished).toBe(true);
  });

  it('an already-aborted signal rejects at once', async () => {
    await expectNetOpsError(raceSignal(new Promise(() => {}), AbortSignal.abort()), 'ABORTED');
  });
});
