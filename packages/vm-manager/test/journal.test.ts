import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { JournalEvent } from '../src/index.js';
import { makeHarness, realVmm, runManagerChild, vmmLabel } from './harness.js';

const describeEvent = (e: JournalEvent) =>
  e.type === 'step'
    ? `${e.vm} ${e.op} ${e.step} ${e.phase}`
    : e.type === 'status'
      ? `${e.vm} status ${e.status}`
      : `${e.vm} vmm ${e.source} ${e.event}`;

/** Follows `feed` until an event matches `last` (or 30 s pass). */
async function followUntil(
  feed: (signal: AbortSignal) => AsyncIterable<JournalEvent>,
  last: (e: JournalEvent) => boolean,
): Promise<JournalEvent[]> {
  const stop = new AbortController();
  const deadline = setTimeout(() => stop.abort(), 30_000);
  const out: JournalEvent[] = [];
  for await (const e of feed(stop.signal)) {
    out.push(e);
    if (last(e)) stop.abort();
  }
  clearTimeout(deadline);
  return out;
}

describe(`VmManager event journal (${vmmLabel})`, () => {
  it('journals the steps and status changes of create and stop, readable by another manager', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({ name: 'web', kernel: h.kernel, memory: '64M' });
    await h.manager.create({ name: 'db', kernel: h.kernel, memory: '64M' });
    await h.manager.stop('web');
    const other = h.newManager();
    const events = [];
    for await (const e of other.journal({ vm: 'web' })) events.push(describeEvent(e));
    expect(events).toContain('web create vm.boot done');
    expect(events.indexOf('web create ip start')).toBeLessThan(events.indexOf('web create ip done'));
    expect(events.indexOf('web status running')).toBeLessThan(events.indexOf('web stop record done'));
    expect(events.at(-1)).toBe('web status stopped');
    expect(events.some((e) => e.startsWith('db '))).toBe(false);
    expect(h.manager.journalStats.failed).toBe(0);
    expect(h.manager.journalStats.appended).toBeGreaterThan(events.length);
  }, 60_000);

  it("holds the VMM's own events, copied by the VM's serial relay, whichever process drove the VM", async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({ name: 'web', kernel: h.kernel, memory: '64M' });
    await h.manager.pause('web');
    await h.manager.resume('web');
    await h.manager.stop('web');
    const all: JournalEvent[] = [];
    for await (const e of h.newManager().journal({ vm: 'web' })) all.push(e);
    const vmm = all.filter((e) => e.type === 'vmm');
    // The relay copies them as the VMM writes them; stop waits for it, so the VMM's last word is in. (A real VMM
    // says more, e.g. virtio devices activated: these are the ones every VMM says, in this order.)
    const expected = [
      'web vmm vmm starting',
      'web vmm vm booting',
      'web vmm vm booted',
      'web vmm vm pausing',
      'web vmm vm paused',
      'web vmm vm resuming',
      'web vmm vm resumed',
      'web vmm vm shutdown',
      'web vmm vm deleted',
      'web vmm vmm shutdown',
    ];
    const seen = vmm.map(describeEvent).filter((e) => expected.includes(e));
    // The real VMM hands each event to a monitor thread its exit does not wait for: under load (seen in CI, v53.0.0,
    // as in chv-client's own test) its final `vmm shutdown` can be lost as the process ends. Nothing else may differ.
    expect(seen).toEqual(realVmm && seen.length === expected.length - 1 ? expected.slice(0, -1) : expected);
    const relay = vmm[0]!.pid;
    expect(relay).not.toBe(process.pid);
    expect(vmm.every((e) => e.pid === relay)).toBe(true);
    // A second boot gets a new VMM, a new relay and its own events.
    await h.manager.start('web');
    await h.manager.delete('web', { force: true });
    const again: JournalEvent[] = [];
    for await (const e of h
      .newManager()
      .journal({ vm: 'web', since: new Date(Date.parse(vmm.at(-1)!.time) + 1) }))
      again.push(e);
    expect(again.filter((e) => e.type === 'vmm').map(describeEvent)).toEqual(
      expect.arrayContaining(['web vmm vm booted', ...(realVmm ? [] : ['web vmm vmm shutdown'])]),
    );
  }, 60_000);

  it('lets a manager follow a create made by another process', async () => {
    await using h = await makeHarness({ backend: 'mosnet' });
    const since = new Date();
    const followed = followUntil(
      (signal) => h.manager.journal({ follow: true, since, signal }),
      (e) => e.type === 'status' && e.status === 'running',
    );
    await new Promise((r) => setTimeout(r, 200));
    const child = await runManagerChild(h.child, {
      op: 'create',
      spec: { name: 'remote', kernel: h.kernel, memory: '64M' },
    });
    expect(child.code, child.stderr).toBe(0);
    const events = await followed;
    expect(events.map(describeEvent)).toEqual(
      expect.arrayContaining([
        'remote create vmm done',
        'remote create vm.boot done',
        'remote status running',
      ]),
    );
    expect(events.every((e) => e.pid !== process.pid)).toBe(true);
  }, 60_000);

  it('still creates the VM when the journal cannot be written, and counts the failures', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.store.init();
    await writeFile(join(h.stateDir, 'events'), 'in the way');
    const vm = await h.manager.create({ name: 'web', kernel: h.kernel, memory: '64M' });
    expect(vm.status).toBe('running');
    expect(h.manager.journalStats.appended).toBe(0);
    expect(h.manager.journalStats.failed).toBeGreaterThan(5);
  }, 60_000);

  it('writes nothing with journal: false', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const { VmManager } = await import('../src/index.js');
    const quiet = new VmManager({ ...h.manager.options, journal: false });
    await quiet.create({ name: 'web', kernel: h.kernel, memory: '64M' });
    const events = [];
    for await (const e of quiet.journal()) events.push(e);
    expect(events).toEqual([]);
    expect(quiet.journalStats.appended).toBe(0);
  }, 60_000);
});
