import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ChvApiError, ChvProcess } from '@my-hypervisor/chv-client';
import {
  kvmUnavailableReason,
  probeGuestImage,
  realVmmBinary,
  realVmmMissingReason,
} from '@my-hypervisor/chv-client/testing';
import { describe, expect, it } from 'vitest';
import { VmManager, VmManagerError } from '../src/index.js';
import { explainVmmExit } from '../src/vmm.js';
import { type Harness, listTree, makeHarness, pidsMentioning, vmTree } from './harness.js';

/** The real cloud-hypervisor: MYHV_CLOUD_HYPERVISOR's (.ci/run sets it to the v53.0.0 beside the checkout). */
const realBinary = realVmmBinary() ?? '';
const kvmMissing = kvmUnavailableReason();
const realSkip =
  realVmmMissingReason() ??
  (kvmMissing === undefined ? '/dev/kvm works here, so the VMM does not fail for want of KVM' : undefined);
if (realSkip) console.warn(`skipped: the real VMM without KVM, because ${realSkip}`);

async function refusal(promise: Promise<unknown>): Promise<VmManagerError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(VmManagerError.isInstance(error), String(error)).toBe(true);
  return error as VmManagerError;
}

/** Nothing of a refused or rolled-back create is left: record, reservation, run dir, TAPs, forwards, processes. */
async function expectNothingLeft(h: Harness, runDir = h.runDir) {
  expect(await vmTree(h.stateDir)).toEqual([]);
  expect(await h.ipam.list()).toEqual([]);
  expect(await listTree(runDir)).toEqual([]);
  expect(h.memory!.snapshot()).toMatchObject({ taps: [], forwards: [] });
  expect(await pidsMentioning(`${runDir}/`)).toEqual([]);
}

function managerWith(h: Harness, vmm: { command: string; commandArgs?: string[] }, runDir = h.runDir) {
  return new VmManager({
    stateDir: h.stateDir,
    runDir,
    network: h.manager.options.network!,
    vmm: { ...vmm, readyTimeoutMs: 10_000 },
  });
}

describe('bad input the host reveals: refused before any work, naming the field', () => {
  it('refuses a kernel Cloud Hypervisor cannot boot', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const text = join(h.shareDir, 'text');
    await writeFile(text, 'not a kernel');
    const empty = join(h.shareDir, 'empty');
    await writeFile(empty, '');
    const noNote = join(h.shareDir, 'no-pvh');
    const image = probeGuestImage();
    image[176 + 8] = 17; // the probe guest's PVH note (at 176) gets another type
    await writeFile(noNote, image);
    for (const [kernel, message] of [
      [text, /is not a kernel image Cloud Hypervisor can boot/],
      [empty, /is empty/],
      [noNote, /without a PVH entry note/],
    ] as const) {
      const error = await refusal(h.manager.create({ name: 'x', kernel }));
      expect(error.code).toBe('INVALID_ARGUMENT');
      expect(error.details.field).toBe('kernel');
      expect(error.message).toMatch(new RegExp(`^kernel: ${kernel} `));
      expect(error.message).toMatch(message);
    }
    expect(h.memory!.calls).toEqual([]);
    await expectNothingLeft(h);
  });

  it('refuses more queue pairs than vCPUs', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const error = await refusal(h.manager.create({ name: 'x', kernel: h.kernel, network: { queues: 2 } }));
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'network.queues' } });
    expect(h.memory!.calls).toEqual([]);
    await expectNothingLeft(h);
  });

  it('refuses a VMM binary that is not cloud-hypervisor, from the spec or the manager', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const notExecutable = join(h.shareDir, 'cloud-hypervisor');
    await writeFile(notExecutable, '#!/bin/sh\necho cloud-hypervisor v53.0.0\n');
    await chmod(notExecutable, 0o644);
    const other = join(h.shareDir, 'other-vmm');
    await writeFile(other, '#!/bin/sh\necho "firecracker v1.9.0"\n');
    await chmod(other, 0o755);
    for (const [command, message] of [
      [notExecutable, /is not executable/],
      ['/bin/echo', /\/bin\/echo is not cloud-hypervisor: `--version` printed/],
      [other, /is not cloud-hypervisor: `--version` printed "firecracker v1\.9\.0"/],
    ] as const) {
      const error = await refusal(managerWith(h, { command }).create({ name: 'x', kernel: h.kernel }));
      expect(error.code).toBe('INVALID_ARGUMENT');
      expect(error.details.field).toBe('options.vmm.command');
      expect(error.message).toMatch(message);
      expect(ChvApiError.isInstance(error.cause)).toBe(true);

      // Allowed (only allowed binaries are run at all: test/trust.test.ts), then checked like the manager's own.
      const allowing = new VmManager({
        ...h.manager.options,
        vmm: { ...h.manager.options.vmm, allowedBinaries: [command] },
      });
      const fromSpec = await refusal(
        allowing.create({ name: 'x', kernel: h.kernel, vmm: { binary: command } }),
      );
      expect(fromSpec.details.field).toBe('vmm.binary');
      expect(fromSpec.message).toMatch(/^vmm\.binary: /);
      expect(fromSpec.message).toMatch(message);
    }
    expect(h.memory!.calls).toEqual([]);
    await expectNothingLeft(h);
  });

  it.skipIf(realSkip !== undefined)(
    'the real VMM without KVM: VMM_FAILED saying KVM is unavailable before any work',
    async () => {
      await using h = await makeHarness({ backend: 'memory' });
      const runDir = join(h.runDir, 'real');
      const manager = managerWith(h, { command: realBinary }, runDir);
      const steps: string[] = [];
      const error = await refusal(
        manager.create(
          { name: 'nokvm', kernel: h.kernel, network: { forwards: [{ hostPort: 8080, guestPort: 80 }] } },
          { onProgress: (e) => steps.push(`${e.step}:${e.phase}`) },
        ),
      );
      expect(error.code).toBe('VMM_FAILED');
      expect(error.details).toMatchObject({ vm: 'nokvm', step: 'check', reason: 'KVM_UNAVAILABLE' });
      expect(error.message).toMatch(/^nokvm: the VMM cannot run guests on this host: KVM is unavailable/);
      expect(error.message).toMatch(/\/dev\/kvm is missing/);
      // Refused before the first step: no address, TAP or forward was made and undone.
      expect(steps).toEqual([]);
      expect(h.memory!.calls).toEqual([]);
      await expectNothingLeft(h, runDir);
      expect(await manager.list()).toEqual([]);
    },
  );

  it.skipIf(realSkip !== undefined)(
    "explains the real VMM's own start-up failure without KVM, keeping its words as the cause",
    async () => {
      const dir = await mkdtemp('/tmp/mhk-');
      try {
        const exited = await ChvProcess.spawn({
          command: realBinary,
          socketPath: join(dir, 'api.sock'),
        }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(ChvApiError.isInstance(exited) && exited.code).toBe('EXITED');
        const error = explainVmmExit(exited, 'nokvm') as VmManagerError;
        expect(error.code).toBe('VMM_FAILED');
        expect(error.details).toMatchObject({ vm: 'nokvm', step: 'vmm', reason: 'KVM_UNAVAILABLE' });
        expect(error.message).toMatch(
          /cloud-hypervisor said "(no supported hypervisor|Failed to open hypervisor interface)"/i,
        );
        expect(error.cause).toBe(exited);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});
