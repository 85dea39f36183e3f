import { parseIPv4Cidr } from '@my-hypervisor/net-ops';
import { describe, expect, it } from 'vitest';
import { nftBridgeLines, nftRemoveForwardLines, nftStructure, parseNftForwards } from './nft-ruleset.js';

describe('nftStructure', () => {
  it('only adds and flushes its own table: never flush ruleset, never another table', () => {
    const lines = nftStructure('myhv');
    expect(lines.every((l) => / inet myhv( |$)/.test(l))).toBe(true);
    expect(lines.some((l) => /flush ruleset|delete table/.test(l))).toBe(false);
    const chains = lines.filter((l) => l.startsWith('add chain')).length;
    expect(lines.filter((l) => l.startsWith('flush chain'))).toHaveLength(chains);
  });
});

describe('nftBridgeLines', () => {
  it('registers bridge and subnet, removing a stale subnet with add + delete', () => {
    expect(
      nftBridgeLines('myhv', 'br0', parseIPv4Cidr('10.62.0.1/24'), [parseIPv4Cidr('10.61.0.1/24')]),
    ).toEqual([
      'add element inet myhv subnets { 10.61.0.0/24 }',
      'delete element inet myhv subnets { 10.61.0.0/24 }',
      'add element inet myhv bridges { "br0" }',
      'add element inet myhv subnets { 10.62.0.0/24 }',
    ]);
  });
});

describe('nftRemoveForwardLines', () => {
  it('deletes the host-address elements of a bound forward too', () => {
    expect(
      nftRemoveForwardLines('t', {
        protocol: 'udp',
        hostPort: 53,
        guestIp: '10.0.0.2',
        guestPort: 53,
        hostIp: '192.0.2.1',
      }),
    ).toEqual([
      'delete element inet t forwards { udp . 53 }',
      'delete element inet t host_forward_ports { udp . 53 }',
      'delete element inet t host_forwards { 192.0.2.1 . udp . 53 }',
    ]);
  });
});

describe('parseNftForwards', () => {
  it('reads forwards, owners from comments and host addresses from host_forwards', () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        { table: { family: 'inet', name: 'myhv' } },
        {
          map: {
            name: 'forwards',
            elem: [
              [{ elem: { val: { concat: ['tcp', 8080] }, comment: 'vm-1' } }, { concat: ['10.62.0.2', 80] }],
              [{ concat: ['udp', 53] }, { concat: ['10.62.0.3', 53] }],
              [
                { elem: { val: { concat: ['tcp', 22] }, comment: 'not an owner!' } },
                { concat: ['10.62.0.4', 22] },
              ],
            ],
          },
        },
        {
          map: {
            name: 'host_forwards',
            elem: [[{ concat: ['192.0.2.1', 'udp', 53] }, { concat: ['10.62.0.3', 53] }]],
          },
        },
        { set: { name: 'bridges', elem: ['br0'] } },
      ],
    });
    expect(parseNftForwards(json)).toEqual([
      { protocol: 'tcp', hostPort: 22, guestIp: '10.62.0.4', guestPort: 22 },
      { protocol: 'tcp', hostPort: 8080, guestIp: '10.62.0.2', guestPort: 80, owner: 'vm-1' },
      { protocol: 'udp', hostPort: 53, guestIp: '10.62.0.3', guestPort: 53, hostIp: '192.0.2.1' },
    ]);
  });
});
