import { parseVmSpec, type VmInfo } from '@my-hypervisor/vm-manager';
import { describe, expect, it } from 'vitest';
import { inspectFields } from './vm-view.js';

function info(spec: Record<string, unknown>): VmInfo {
  return {
    id: '000000000001',
    name: 'web',
    status: 'stopped',
    vmmAlive: false,
    forwards: [],
    shares: [],
    spec: parseVmSpec({ name: 'web', kernel: '/boot/vmlinux', ...spec }),
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    paths: { dir: '/var/lib/myhv/vms/web', serialLog: '/x/serial.log', vmmLog: '/x/vmm.log' },
  };
}

describe('vm inspect for people', () => {
  it('shows the labels as key=value on one line, in the order written, after the id', () => {
    const fields = inspectFields(info({ labels: { app: 'web', 'myhv.cluster': 'prod-1', tier: '' } }));
    expect(fields.filter(([label]) => label === 'labels')).toEqual([
      ['labels', 'app=web,myhv.cluster=prod-1,tier='],
    ]);
    expect(fields.slice(0, 3).map(([label]) => label)).toEqual(['name', 'id', 'labels']);
  });

  it('shows no labels line for a VM without labels', () => {
    for (const spec of [{}, { labels: {} }]) {
      expect(inspectFields(info(spec)).map(([label]) => label)).not.toContain('labels');
    }
  });
});
