import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HostProbe } from '../src/index.js';
import { VmManager, VmManagerError } from '../src/index.js';
import { type Harness, makeHarness, vmmLabel } from './harness.js';

/** Every file and directory under the state directory with its mtime and content: the IPAM cursor included. */
function stateSnapshot(h: Harness): string {
  const lines: string[] = [];
  const visit = (path: string) => {
    const st = statSync(path);
    lines.push(`${path} ${st.mtimeMs} ${st.isFile() ? readFileSync(path, 'utf8') : ''}`);
    if (st.isDirectory()) for (const entry of readdirSync(path).sort()) visit(join(path, entry));
  };
  visit(h.stateDir);
  return lines.join('\n');
}

/** The harness's manager, with a probe that says which ports are taken and which addresses the host has. */
function managerWith(h: Harness, taken: { tcp?: number[]; udp?: number[] } = {}): VmManager {
  const hostProbe: HostProbe = {
    localAddresses: async () => ['127.0.0.1', '192.0.2.10'],
    listening: async (protocol) => new Set(taken[protocol] ?? []),
  };
  return new VmManager({ ...h.manager.options, hostProbe });
}

async function refusal(promise: Promise<unknown>): Promise<VmManagerError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(VmManagerError.isInstance(error), String(error)).toBe(true);
  return error as VmManagerError;
}

describe(`forwards refused before any work (memory network, ${vmmLabel})`, () => {
  it('create: a foreign host IP, another VM’s port (stopped too), a port a socket holds', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const manager = managerWith(h, { tcp: [9090], udp: [5353] });
    await manager.create({
      name: 'web',
      kernel: h.kernel,
      network: { forwards: [{ hostPort: 8080, guestPort: 80 }] },
    });
    await manager.create({
      name: 'db',
      kernel: h.kernel,
      network: { forwards: [{ protocol: 'udp', hostPort: 8081, guestPort: 53 }] },
    });
    await manager.stop('db', { gracefulMs: 0 });
    const calls = h.memory!.calls.length;
    const before = stateSnapshot(h);
    const cases: [unknown, string, string, Record<string, unknown>][] = [
      [{ hostIp: '8.8.8.8', hostPort: 8082, guestPort: 80 }, 'INVALID_ARGUMENT', 'hostIp', {}],
      [{ hostPort: 8080, guestPort: 81 }, 'CONFLICT', 'hostPort', { owner: 'web' }],
      [{ protocol: 'udp', hostPort: 8081, guestPort: 53 }, 'CONFLICT', 'hostPort', { owner: 'db' }],
      [{ hostPort: 9090, guestPort: 80 }, 'CONFLICT', 'hostPort', {}],
      [{ protocol: 'udp', hostPort: 5353, guestPort: 53 }, 'CONFLICT', 'hostPort', {}],
    ];
    for (const [forward, code, key, details] of cases) {
      const error = await refusal(
        manager.create({
          name: 'new',
          kernel: h.kernel,
          network: { forwards: [{ hostPort: 7000, guestPort: 70 }, forward] },
        }),
      );
      expect(error.code, JSON.stringify(forward)).toBe(code);
      expect(error.details).toMatchObject({ field: `network.forwards[1].${key}`, ...details });
    }
    // Not an address taken, a TAP made, a forward installed, a lock file written: not even the IPAM cursor moved.
    expect(stateSnapshot(h)).toBe(before);
    expect(h.memory!.calls.length).toBe(calls);
    // The same ports on the other protocol, and the host's own address, are fine.
    await manager.create({
      name: 'new',
      kernel: h.kernel,
      network: {
        forwards: [
          { protocol: 'udp', hostPort: 8080, guestPort: 80 },
          { hostIp: '192.0.2.10', hostPort: 8081, guestPort: 80 },
        ],
      },
    });
  });

  it('addForward: refuses the same before its lock, and stays idempotent for the VM’s own forward', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const manager = managerWith(h, { tcp: [9090, 8080] });
    await manager.create({ name: 'web', kernel: h.kernel });
    await manager.create({
      name: 'db',
      kernel: h.kernel,
      network: { forwards: [{ hostPort: 5432, guestPort: 5432 }] },
    });
    await manager.stop('db', { gracefulMs: 0 });
    const calls = h.memory!.calls.length;
    const before = stateSnapshot(h);
    const cases: [unknown, string, string][] = [
      [{ hostIp: '8.8.8.8', hostPort: 8082, guestPort: 80 }, 'INVALID_ARGUMENT', 'hostIp'],
      [{ hostPort: 5432, guestPort: 5432 }, 'CONFLICT', 'hostPort'],
      [{ hostPort: 9090, guestPort: 80 }, 'CONFLICT', 'hostPort'],
      [{ hostPort: 0, guestPort: 80 }, 'INVALID_ARGUMENT', 'hostPort'],
    ];
    for (const [forward, code, field] of cases) {
      const error = await refusal(manager.addForward('web', forward));
      expect(error.code, JSON.stringify(forward)).toBe(code);
      expect(error.details.field).toBe(field);
    }
    expect(stateSnapshot(h)).toBe(before);
    expect(h.memory!.calls.length).toBe(calls);

    // Once added, the same forward again is a no-op even though a socket now seems to hold the port.
    await managerWith(h).addForward('web', { hostPort: 8080, guestPort: 80 });
    const again = await manager.addForward('web', { hostPort: 8080, guestPort: 80 });
    expect(again.forwards).toHaveLength(1);
    // Another forward on that port is refused before the lock too.
    const added = stateSnapshot(h);
    const other = await refusal(manager.addForward('web', { hostPort: 8080, guestPort: 81 }));
    expect(other).toMatchObject({ code: 'CONFLICT', details: { field: 'hostPort' } });
    expect(stateSnapshot(h)).toBe(added);
  });

  it('start does not re-check the forwards a VM already owns', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({
      name: 'web',
      kernel: h.kernel,
      network: { forwards: [{ hostPort: 8080, guestPort: 80 }] },
    });
    await h.manager.stop('web', { gracefulMs: 0 });
    const info = await managerWith(h, { tcp: [8080] }).start('web');
    expect(info.status).toBe('running');
  });
});
