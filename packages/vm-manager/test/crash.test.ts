import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type BackendKind,
  type Harness,
  hasVirtiofsd,
  hostCanConfine,
  isRoot,
  listTree,
  makeHarness,
  pidsMentioning,
  runManagerChild,
  tapsInNetns,
  vmTree,
} from './harness.js';

// Kill `create` and `delete` (SIGKILL, from inside, via MYHV_CRASH_AFTER) right after every step, then run
// reconcile from another process: nothing may leak and no state file may be corrupt. The mosnet backend keeps the
// network state in this test process (behind a real socket), so a crashed child cannot take it along; the local
// backend keeps it in the kernel, inside a throwaway namespace (root only).
const backends: { kind: BackendKind; skip?: string }[] = [
  { kind: 'mosnet' },
  { kind: 'local', ...(isRoot ? {} : { skip: 'needs root for a network namespace' }) },
];
for (const b of backends)
  if (b.skip) console.warn(`crash tests with the ${b.kind} backend skipped: ${b.skip}`);
const withShares = isRoot && hasVirtiofsd;
if (!withShares) console.warn('crash tests run without shares: they need root and virtiofsd');

/**
 * Where the child confines its VMMs (the default as root: only the local backend can give a TAP to a VM's uid), a
 * create claims the VM's uid first; the next step's write records it.
 */
const confinedOn = (kind: BackendKind) => hostCanConfine && kind === 'local';
const createSteps = [
  'ip',
  'network',
  'forwards',
  ...(withShares ? ['shares'] : []),
  'vmm',
  'vm.create',
  'vm.boot',
  'confirm',
  'record',
];
const deleteSteps = [
  'vmm-stop',
  ...(withShares ? ['shares-release'] : []),
  'forwards-remove',
  'network-detach',
  'ip-release',
];

function spec(h: Harness, name: string) {
  return {
    name,
    kernel: h.kernel,
    network: {
      forwards: [
        { hostPort: 8080, guestPort: 80 },
        { protocol: 'udp', hostPort: 5353, guestPort: 53 },
      ],
    },
    ...(withShares ? { shares: [{ hostPath: h.shareDir, tag: 'data' }] } : {}),
  };
}

async function expectStateReadable(h: Harness) {
  for (const name of h.store.names()) await expect(h.store.read(name)).resolves.not.toThrow();
}

async function expectNothingLeft(h: Harness) {
  expect(await h.manager.list()).toEqual([]);
  expect(await vmTree(h.stateDir)).toEqual([]);
  // No uid stays claimed (confined VMs): reconcile sweeps a marker whose VM is gone.
  expect(await listTree(join(h.stateDir, 'confinement', 'uids'))).toEqual([]);
  expect(await h.ipam.list()).toEqual([]);
  if (h.memory) expect(h.memory.snapshot()).toMatchObject({ taps: [], forwards: [] });
  if (h.netns) {
    expect(await tapsInNetns(h.netns)).toEqual([]);
    expect(await h.ops.listPortForwards()).toEqual([]);
  }
  expect(await pidsMentioning(h.runDir)).toEqual([]);
  const runEntries = (await readdir(h.runDir)).filter((e) => e !== 'mosnet.sock' && e !== 'fs');
  expect(runEntries).toEqual([]);
  expect(await listTree(join(h.runDir, 'fs'))).toEqual([]);
}

describe('crash safety', () => {
  for (const backend of backends) {
    describe.skipIf(backend.skip)(`${backend.kind} backend`, () => {
      it.each([...(confinedOn(backend.kind) ? ['uid'] : []), ...createSteps])(
        'create killed right after %s, then reconcile: nothing leaks',
        async (step) => {
          await using h = await makeHarness({ backend: backend.kind, shares: withShares });
          const result = await runManagerChild(
            h.child,
            { op: 'create', spec: spec(h, 'vm1') },
            { MYHV_CRASH_AFTER: `create:${step}` },
          );
          expect(result.signal, result.stderr).toBe('SIGKILL');
          await expectStateReadable(h);
          const report = await h.manager.reconcile();
          expect(report.errors).toEqual([]);
          if (step === 'record') {
            // The create had finished: reconcile must keep the VM, and delete must then clean it up.
            expect(report.changes.filter((c) => c.kind === 'vm')).toEqual([]);
            expect((await h.manager.get('vm1')).status).toBe('running');
            await h.manager.delete('vm1', { force: true });
          } else {
            expect(report.changes).toContainEqual(expect.objectContaining({ kind: 'vm', target: 'vm1' }));
          }
          await expectNothingLeft(h);
          expect((await h.manager.reconcile()).changes).toEqual([]);
        },
      );

      // A running VM without shares: its VMM is killed while the next one starts (vmm-gone beside vmm). With
      // `vmm.standby`, the standby (started after the snapshot) takes its place instead, and its held relay is
      // released after vm.restore.
      const restoreSteps = [
        'vmm-stop',
        ...(confinedOn(backend.kind) ? ['uid'] : []),
        'vmm-gone',
        'vmm',
        'vm.restore',
      ];
      it.each([
        ...[...restoreSteps, 'record'].map((step) => ({ step, standby: false })),
        ...[...restoreSteps, 'serial-relay', 'record'].map((step) => ({ step, standby: true })),
      ])(
        'restore (standby: $standby) killed right after $step, then reconcile: one VMM or none, restorable again',
        async ({ step, standby }) => {
          await using h = await makeHarness({ backend: backend.kind, vmm: { standby } });
          const { shares: _none, ...withoutShares } = spec(h, 'vm1');
          await h.manager.create(withoutShares);
          await h.manager.snapshot('vm1');
          await h.manager.idle();
          const ready = (await h.store.read('vm1'))!.resources.standby;
          expect(ready?.serialRelay !== undefined).toBe(standby);
          const result = await runManagerChild(
            h.child,
            { op: 'restore', name: 'vm1' },
            { MYHV_CRASH_AFTER: `restore:${step}` },
          );
          expect(result.signal, result.stderr).toBe('SIGKILL');
          await expectStateReadable(h);
          const report = await h.manager.reconcile();
          expect(report.errors).toEqual([]);
          const vm = await h.manager.get('vm1');
          const record = (await h.store.read('vm1'))!;
          if (step === 'record') {
            // The restore had finished: its VMM and relay run, recorded (the standby's, when there was one);
            // nothing else does.
            expect(vm.status).toBe('running');
            const vmm = record.resources.vmm!;
            if (ready) expect([vmm.pid, vmm.serialRelay!.pid]).toEqual([ready.pid, ready.serialRelay!.pid]);
            expect((await pidsMentioning(h.runDir)).sort()).toEqual([vmm.pid, vmm.serialRelay!.pid].sort());
          } else {
            // Interrupted: stopped, and no VMM (the killed one, one started and never restored, or the standby) or
            // relay is left.
            expect(vm.status).toBe('stopped');
            expect(record.resources.standby).toBeUndefined();
            expect(await pidsMentioning(h.runDir)).toEqual([]);
          }
          expect(await readdir(h.runDir)).not.toContainEqual(expect.stringMatching(/\.next$/));
          expect(await h.manager.restore('vm1')).toMatchObject({ status: 'running' });
          await h.manager.delete('vm1', { force: true });
          await h.manager.idle();
          await expectNothingLeft(h);
        },
      );

      it.each(deleteSteps)('delete killed right after %s, then reconcile: nothing leaks', async (step) => {
        await using h = await makeHarness({ backend: backend.kind, shares: withShares });
        await h.manager.create(spec(h, 'vm1'));
        const result = await runManagerChild(
          h.child,
          { op: 'delete', name: 'vm1' },
          { MYHV_CRASH_AFTER: `delete:${step}` },
        );
        expect(result.signal, result.stderr).toBe('SIGKILL');
        await expectStateReadable(h);
        const report = await h.manager.reconcile();
        expect(report.errors).toEqual([]);
        expect(report.changes).toContainEqual(
          expect.objectContaining({
            kind: 'vm',
            target: 'vm1',
            action: expect.stringMatching(/finished an interrupted delete/),
          }),
        );
        await expectNothingLeft(h);
      });
    });
  }
});
