import { describe, expect, it } from 'vitest';
import { type BackendKind, isRoot, makeHarness, runManagerChild, tapsInNetns } from './harness.js';

// 50 `create`s from 50 separate processes at once, over shared host state: the kernel in a namespace where root,
// else the mosnet reference server holding memory ops.
const kind: BackendKind = isRoot ? 'local' : 'mosnet';

describe(`50 concurrent creates from 50 processes (${kind} backend)`, () => {
  it('gives 50 distinct addresses, TAP names and MACs, all recorded and running', async () => {
    await using h = await makeHarness({ backend: kind });
    const names = Array.from({ length: 50 }, (_, i) => `vm${String(i).padStart(2, '0')}`);
    const results = await Promise.all(
      names.map((name, i) =>
        // 50 VMMs (Node processes here) starting at once on a small machine, each behind its confinement chain:
        // this test is about shared state under contention, not start-up speed, so readiness gets more time.
        runManagerChild(
          { ...h.child, vmm: { ...h.child.vmm, readyTimeoutMs: 60_000 } },
          {
            op: 'create',
            spec: {
              name,
              kernel: h.kernel,
              memory: '64M',
              network: { forwards: [{ hostPort: 20_000 + i, guestPort: 80 }] },
            },
          },
        ),
      ),
    );
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const vms = await h.manager.list();
    expect(vms.map((v) => v.name)).toEqual(names);
    expect(vms.every((v) => v.status === 'running' && v.vmmAlive)).toBe(true);
    expect(new Set(vms.map((v) => v.ip)).size).toBe(50);
    expect(new Set(vms.map((v) => v.tap)).size).toBe(50);
    expect(new Set(vms.map((v) => v.mac)).size).toBe(50);
    expect((await h.ipam.list()).length).toBe(50);
    if (h.netns) expect((await tapsInNetns(h.netns)).sort()).toEqual(vms.map((v) => v.tap).sort());
    expect((await h.ops.listPortForwards()).length).toBe(50);
  }, 300_000);
});
