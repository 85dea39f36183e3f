import type { ResultPromise } from 'execa';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LocalOps } from '../../src/index.js';
import { createNetns, deleteAllNetns, inNetns, kernelSkipReason } from './netns.js';
import { connect, plugGuest, startServer } from './traffic-kit.js';

/*
 * Real packets through real port forwards. One namespace plays the host (it holds the bridge and runs LocalOps);
 * "guest" namespaces join the bridge through a veth (a TAP carries nothing without a VMM); a client namespace
 * reaches the host over another veth and has no route to the VM subnet, so only NAT can answer it.
 *
 *   client 192.168.77.2 ── c0 192.168.77.1 [host: br0 10.77.0.1/24] ── g1 10.77.0.2 (TCP server :8080)
 *                                                                  └── g2 10.77.0.3
 */

const reasons = {
  nft: await kernelSkipReason(['nft', 'iptables']),
  iptables: await kernelSkipReason(['iptables', 'iptables-save', 'iptables-restore']),
};

afterAll(deleteAllNetns);

const variants = [
  { nat: 'nft', forwardPolicy: 'ACCEPT' },
  { nat: 'nft', forwardPolicy: 'DROP' },
  { nat: 'iptables', forwardPolicy: 'ACCEPT' },
  { nat: 'iptables', forwardPolicy: 'DROP' },
] as const;

for (const { nat, forwardPolicy } of variants) {
  const reason = reasons[nat];
  if (reason) console.warn(`skipped: traffic test (${nat}, FORWARD ${forwardPolicy}) because ${reason}`);

  describe.skipIf(reason !== undefined)(
    `traffic through LocalOps (${nat}, iptables FORWARD policy ${forwardPolicy})`,
    () => {
      let host: string;
      let client: string;
      let g1: string;
      let g2: string;
      let ops: LocalOps;
      const servers: ResultPromise[] = [];
      const forward = { protocol: 'tcp', hostPort: 18080, guestIp: '10.77.0.2', guestPort: 8080 } as const;

      beforeAll(async () => {
        [host, client, g1, g2] = [
          await createNetns(),
          await createNetns(),
          await createNetns(),
          await createNetns(),
        ];
        // Docker's default: forwarded traffic is dropped unless some rule accepts it.
        if (forwardPolicy === 'DROP') await inNetns(host, 'iptables', ['-P', 'FORWARD', 'DROP']);
        ops = new LocalOps({ netns: host, nat });
        await ops.ensureBridge({ name: 'br0', address: '10.77.0.1/24' });
        await plugGuest(host, 'g1', g1, '10.77.0.2/24', '10.77.0.1');
        await plugGuest(host, 'g2', g2, '10.77.0.3/24', '10.77.0.1');
        for (const port of ['g1', 'g2']) {
          await ops.addToBridge(port, 'br0');
          await ops.bringUp(port);
        }
        await plugGuest(host, 'c0', client, '192.168.77.2/24');
        await execa('ip', ['-n', host, 'addr', 'add', '192.168.77.1/24', 'dev', 'c0']);
        await execa('ip', ['-n', host, 'link', 'set', 'c0', 'up']);
        for (const [netns, name, port] of [
          [g1, 'g1', 8080],
          [client, 'client', 9090],
        ] as const) {
          servers.push((await startServer(netns, name, port)).process);
        }
      }, 60_000);

      afterEach(async () => {
        await ops.removePortForward(forward).catch(() => undefined);
      });

      afterAll(async () => {
        for (const server of servers) server.kill();
        await Promise.allSettled(servers);
        await ops?.close();
      });

      it('a client outside reaches the guest through the host port, and keeps its own address', async () => {
        expect(await connect(client, '192.168.77.1', 18080)).toMatch(/^failed/);
        expect(await ops.addPortForward(forward)).toEqual({ created: true });
        expect(await connect(client, '192.168.77.1', 18080)).toBe('g1 saw 192.168.77.2');
      });

      it('the host reaches the guest through 127.0.0.1:port (route_localnet + masquerade)', async () => {
        await ops.addPortForward(forward);
        expect(await connect(host, '127.0.0.1', 18080)).toBe('g1 saw 10.77.0.1');
      });

      it('a second guest reaches the first through the host port (hairpin)', async () => {
        await ops.addPortForward(forward);
        expect(await connect(g2, '10.77.0.1', 18080)).toBe('g1 saw 10.77.0.1');
        expect(await connect(g2, '192.168.77.1', 18080)).toBe('g1 saw 10.77.0.1');
      });

      it('a guest reaches its own forwarded port (hairpin mode on its bridge port)', async () => {
        await ops.addPortForward(forward);
        expect(await connect(g1, '10.77.0.1', 18080)).toBe('g1 saw 10.77.0.1');
      });

      it('a guest reaches the outside with its address masqueraded', async () => {
        // The client has no route to 10.77.0.0/24: only the egress masquerade lets it answer.
        expect(await connect(g1, '192.168.77.2', 9090)).toBe('client saw 192.168.77.1');
      });

      it('a forward bound to one host address answers only there', async () => {
        const bound = { ...forward, hostPort: 18081, hostIp: '192.168.77.1' };
        expect(await ops.addPortForward(bound)).toEqual({ created: true });
        try {
          expect(await connect(client, '192.168.77.1', 18081)).toBe('g1 saw 192.168.77.2');
          expect(await connect(g2, '10.77.0.1', 18081)).toMatch(/^failed/);
        } finally {
          await ops.removePortForward(bound);
        }
      });

      it('removing the forward stops the traffic', async () => {
        await ops.addPortForward(forward);
        expect(await connect(client, '192.168.77.1', 18080)).toBe('g1 saw 192.168.77.2');
        expect(await ops.removePortForward(forward)).toEqual({ existed: true });
        expect(await connect(client, '192.168.77.1', 18080)).toMatch(/^failed/);
        expect(await connect(host, '127.0.0.1', 18080)).toMatch(/^failed/);
        expect(await connect(g2, '10.77.0.1', 18080)).toMatch(/^failed/);
      });

      if (forwardPolicy === 'DROP') {
        it('it is our iptables FORWARD accepts that let the traffic through', async () => {
          await ops.addPortForward(forward);
          const jump = ['FORWARD', '-m', 'comment', '--comment', 'myhv:jump', '-j', 'MYHV-FORWARD'];
          await inNetns(host, 'iptables', ['-D', ...jump]);
          try {
            expect(await connect(client, '192.168.77.1', 18080)).toMatch(/^failed/);
          } finally {
            await inNetns(host, 'iptables', ['-I', ...jump]);
          }
          expect(await connect(client, '192.168.77.1', 18080)).toBe('g1 saw 192.168.77.2');
        });
      }
    },
  );
}
