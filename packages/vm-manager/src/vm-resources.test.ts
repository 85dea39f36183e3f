import type { VmNetworkAttachment } from '@my-hypervisor/net-ops';
import { describe, expect, it } from 'vitest';
import { parseVmSpec } from './spec.js';
import type { VmRecord } from './state-store.js';
import { attachRequest, detachRequest, vmmOptionsFor } from './vm-resources.js';

function record(network: Record<string, unknown> = {}, attachment?: Partial<VmNetworkAttachment>): VmRecord {
  return {
    schema: 1,
    id: '0123456789ab',
    name: 'web',
    spec: parseVmSpec({ name: 'web', kernel: '/boot/vmlinux', network }),
    status: 'stopped',
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    resources: {
      ip: '10.62.0.2',
      tap: 'myhv0123456789a',
      forwards: [],
      shares: [],
      ...(attachment ? { network: attachment as VmNetworkAttachment } : {}),
    },
  };
}

describe('vmmOptionsFor', () => {
  it('runs the VMM in the attachment’s namespace, else in the manager’s', () => {
    const vmm = { command: '/usr/bin/cloud-hypervisor', netns: 'lab' };
    expect(vmmOptionsFor({ vmm }, record({}, { netns: 'myhv-0123456789ab' }))).toEqual({
      command: '/usr/bin/cloud-hypervisor',
      netns: 'myhv-0123456789ab',
    });
    expect(vmmOptionsFor({ vmm }, record({}, { tap: 'x' }))).toEqual(vmm);
    expect(vmmOptionsFor({ vmm }, record())).toEqual(vmm);
    expect(vmmOptionsFor({ vmm: {} }, record({}, { tap: 'x' }))).not.toHaveProperty('netns');
    expect(vmmOptionsFor({ vmm: {} }, record({}, { netns: 'myhv-a' })).netns).toBe('myhv-a');
  });
});

describe('attachRequest / detachRequest', () => {
  it('asks attach for the policy fields the spec sets, and detach by the VM’s address', () => {
    expect(attachRequest(record({ isolation: 'none', egress: 'deny-all' }))).toEqual({
      vmId: '0123456789ab',
      ipv4: '10.62.0.2',
      tap: 'myhv0123456789a',
      multiQueue: false,
      hostname: 'web',
      policy: { isolation: 'none', egress: 'deny-all' },
    });
    expect(attachRequest(record({ isolation: 'vm' })).policy).toEqual({ isolation: 'vm' });
    expect(attachRequest(record())).not.toHaveProperty('policy');
    expect(detachRequest(record())).toEqual({
      vmId: '0123456789ab',
      tap: 'myhv0123456789a',
      ipv4: '10.62.0.2',
    });
  });
});
