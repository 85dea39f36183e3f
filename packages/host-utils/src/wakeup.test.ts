import { describe, expect, it } from 'vitest';
import { Wakeup } from './wakeup.js';

describe('Wakeup', () => {
  it('ends a sleep early when woken', async () => {
    const wakeup = new Wakeup();
    const started = performance.now();
    setTimeout(wakeup.wake, 5);
    await wakeup.sleep(5_000);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('remembers a wake-up that came while nobody slept', async () => {
    const wakeup = new Wakeup();
    wakeup.wake();
    const started = performance.now();
    await wakeup.sleep(5_000);
    expect(performance.now() - started).toBeLessThan(1_000);
    wakeup.wake();
    expect(wakeup.take()).toBe(true);
    expect(wakeup.take()).toBe(false);
  });

  it('sleeps the whole time when nobody wakes it', async () => {
    const started = performance.now();
    await new Wakeup().sleep(30);
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
  });
});
