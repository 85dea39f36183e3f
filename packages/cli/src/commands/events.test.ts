import { describe, expect, it } from 'vitest';
import { formatEvent, parseTimeArg } from './events.js';

describe('parseTimeArg', () => {
  const now = Date.parse('2026-12-06T12:00:00Z');
  it('reads ISO times, Unix seconds and durations before now', () => {
    expect(parseTimeArg('--since', '2026-12-06T10:00:00Z', now).toISOString()).toBe(
      '2026-12-06T10:00:00.000Z',
    );
    expect(parseTimeArg('--since', '1765000000', now).getTime()).toBe(1_765_000_000_000);
    expect(parseTimeArg('--since', '1h30m', now).toISOString()).toBe('2026-12-06T10:30:00.000Z');
    expect(parseTimeArg('--since', '2d', now).toISOString()).toBe('2026-12-04T12:00:00.000Z');
  });
  it('refuses anything else with INVALID_ARGUMENT naming the flag', () => {
    for (const bad of ['yesterday', '10x', '', '2026-13-45'])
      expect(() => parseTimeArg('--until', bad, now)).toThrow(
        expect.objectContaining({
          code: 'INVALID_ARGUMENT',
          details: expect.objectContaining({ field: '--until' }),
        }),
      );
  });
});

describe('formatEvent', () => {
  it('prints TIME VM OP STEP PHASE (ms), and status changes', () => {
    const base = { time: '2026-12-06T12:00:00.000Z', pid: 1, seq: 1 };
    expect(
      formatEvent({
        ...base,
        type: 'step',
        vm: 'web',
        op: 'create',
        step: 'vm.boot',
        phase: 'done',
        ms: 12.4,
      }),
    ).toBe('2026-12-06T12:00:00.000Z web create vm.boot done (12 ms)');
    expect(formatEvent({ ...base, type: 'status', vm: 'web', status: 'running' })).toBe(
      '2026-12-06T12:00:00.000Z web status running',
    );
  });
  it("prints a VMM's own events with what it says about them", () => {
    const base = { time: '2026-12-06T12:00:00.000Z', pid: 1, seq: 1, type: 'vmm', vm: 'web' } as const;
    expect(formatEvent({ ...base, source: 'vm', event: 'booted' })).toBe(
      '2026-12-06T12:00:00.000Z web vmm vm booted',
    );
    expect(
      formatEvent({ ...base, source: 'vm', event: 'device-removed', properties: { id: '_disk1' } }),
    ).toBe('2026-12-06T12:00:00.000Z web vmm vm device-removed id=_disk1');
  });
});
