import { readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { expectChvError, realBinaryOnDisk } from '../../test/helpers.js';
import { runProbeGuest } from './probe-run.js';
import { kvmUnavailableReason } from './real-vmm.js';

const probeDirs = async () => (await readdir('/tmp')).filter((name) => name.startsWith('myhv-probe-'));

const noKvm = kvmUnavailableReason();
describe.skipIf(!realBinaryOnDisk || !noKvm)('runProbeGuest on the real binary without KVM', () => {
  it("throws the VMM's own start-up error and leaves no directory or process behind", async () => {
    const before = await probeDirs();
    const error = await expectChvError(runProbeGuest({ command: realBinaryOnDisk! }), 'EXITED');
    expect(error.message).toContain('no supported hypervisor');
    expect(await probeDirs()).toEqual(before);
  });
});
if (!realBinaryOnDisk || !noKvm)
  console.warn(
    `skipped: runProbeGuest's failure without KVM, because ${realBinaryOnDisk ? 'this host has a usable /dev/kvm' : 'MYHV_CLOUD_HYPERVISOR names no binary on disk'}`,
  );
