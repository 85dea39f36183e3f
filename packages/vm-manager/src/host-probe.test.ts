import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { type AddressInfo, createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { VmManagerError } from './errors.js';
import { localHostProbe, netnsHostProbe, parseIpAddrJson, parseProcNetPorts } from './host-probe.js';

const procNetTcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0100007F:A2B4 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
`;
const procNetTcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0 100 0 0 10 0
`;
const procNetUdp = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  10: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5 2 0 0
  11: 0A3E0001:0035 08080808:0035 01 00000000:00000000 00:00000000 00000000     0        0 6 2 0 0
`;

describe('parseProcNetPorts', () => {
  it('finds listening tcp ports (IPv4 and IPv6), not connected ones', () => {
    expect([...parseProcNetPorts(procNetTcp + procNetTcp6, 'tcp')].sort((a, b) => a - b)).toEqual([
      80, 2024, 8080,
    ]);
  });

  it('finds every bound udp port', () => {
    expect([...parseProcNetPorts(procNetUdp, 'udp')].sort((a, b) => a - b)).toEqual([53, 5353]);
  });

  it('ignores headers, blank lines and junk', () => {
    expect(parseProcNetPorts('  sl  local_address\n\nnot a line\n', 'tcp').size).toBe(0);
  });
});

describe('parseIpAddrJson', () => {
  it('lists the IPv4 addresses of every link', () => {
    const text = JSON.stringify([
      { ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
      {
        ifname: 'myhvbr0',
        addr_info: [
          { family: 'inet', local: '10.62.0.1', prefixlen: 24 },
          { family: 'inet6', local: 'fe80::1', prefixlen: 64 },
        ],
      },
      { ifname: 'down0' },
    ]);
    expect(parseIpAddrJson(text)).toEqual(['127.0.0.1', '10.62.0.1']);
    expect(parseIpAddrJson('')).toEqual([]);
  });
});

describe('localHostProbe', () => {
  it("sees this process's own listening tcp socket and bound udp socket", async () => {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const udp = createSocket('udp4');
    udp.bind(0, '127.0.0.1');
    await once(udp, 'listening');
    try {
      const probe = localHostProbe();
      const tcpPort = (server.address() as AddressInfo).port;
      const udpPort = udp.address().port;
      expect((await probe.listening('tcp')).has(tcpPort)).toBe(true);
      expect((await probe.listening('udp')).has(udpPort)).toBe(true);
    } finally {
      server.close();
      udp.close();
    }
  });

  it('lists the loopback address among the local ones', async () => {
    expect(await localHostProbe().localAddresses()).toContain('127.0.0.1');
  });

  it('honours an aborted signal', async () => {
    const error = await localHostProbe()
      .listening('tcp', { signal: AbortSignal.abort() })
      .catch((e: unknown) => e);
    expect(VmManagerError.isInstance(error) && error.code).toBe('ABORTED');
  });
});

describe('netnsHostProbe', () => {
  it('refuses a name that is not a namespace name before running anything', () => {
    for (const name of ['', '..', 'a/b', '-n', 'a b']) expect(() => netnsHostProbe(name)).toThrow(TypeError);
  });
});
