import { describe, expect, it } from 'vitest';
import { attachPolicyLines, detachPolicyLines, parsePolicyCounters, policyTag } from './namespace-ruleset.js';

const target = {
  port: 'myhvabc',
  ipv4: '10.62.0.5',
  mac: '02:00:00:00:00:05',
  subnet: '10.62.0.0/24',
  gateway: '10.62.0.1',
  hostPorts: [{ protocol: 'udp', port: 53 }] as const,
};

describe('namespace policy rules', () => {
  it('an isolated VM with deny-all: subnet dropped and counted, everything else out counted, host input guarded', () => {
    const lines = attachPolicyLines('t', { ...target, policy: { isolation: 'vm', egress: 'deny-all' } });
    expect(lines).toContain(
      'add rule inet t out_myhvabc ip daddr 10.62.0.0/24 counter name iso_myhvabc drop',
    );
    expect(lines).toContain('add rule inet t out_myhvabc counter name egr_myhvabc drop');
    expect(lines).toContain('add rule inet t in_myhvabc ip daddr != 10.62.0.1 counter name iso_myhvabc drop');
    expect(lines).toContain('add rule inet t in_myhvabc udp dport 53 accept');
    expect(lines).toContain('add element bridge t isolated { "myhvabc" : jump fwd_myhvabc }');
    expect(lines.filter((l) => l.includes('accept') && l.includes('out_'))).toEqual([]);
  });

  it('an open VM gets anti-spoofing but neither isolation nor host-input rules', () => {
    const lines = attachPolicyLines('t', { ...target, policy: { isolation: 'none', egress: 'allow-all' } });
    expect(lines).toContain('add element bridge t sources { "myhvabc" . 10.62.0.5 }');
    expect(lines).toContain('add element bridge t macs { "myhvabc" . 02:00:00:00:00:05 }');
    expect(lines).toContain('add rule inet t out_myhvabc ip daddr 10.62.0.0/24 accept');
    expect(lines).toContain('add rule inet t out_myhvabc accept');
    expect(lines.some((l) => l.includes('in_myhvabc') || l.includes('isolated'))).toBe(false);
  });

  it('renders each egress rule shape', () => {
    const lines = attachPolicyLines('t', {
      ...target,
      policy: {
        isolation: 'vm',
        egress: [
          { cidr: '192.0.2.0/24', proto: 'tcp', ports: [443, 80, 443] },
          { cidr: '198.51.100.0/24' },
          { cidr: '203.0.113.0/24', ports: [53] },
          { cidr: '203.0.113.0/24', proto: 'icmp' },
          { cidr: '0.0.0.0/0', proto: 'udp' },
        ],
      },
    });
    const out = lines.filter(
      (l) => l.startsWith('add rule inet t out_myhvabc ip daddr') && l.endsWith('accept'),
    );
    expect(out).toEqual([
      'add rule inet t out_myhvabc ip daddr 192.0.2.0/24 tcp dport { 443, 80 } accept',
      'add rule inet t out_myhvabc ip daddr 198.51.100.0/24 accept',
      'add rule inet t out_myhvabc ip daddr 203.0.113.0/24 meta l4proto { tcp, udp } th dport { 53 } accept',
      'add rule inet t out_myhvabc ip daddr 203.0.113.0/24 meta l4proto icmp accept',
      'add rule inet t out_myhvabc ip daddr 0.0.0.0/0 meta l4proto udp accept',
    ]);
    // The counted drop comes after every allowance.
    const drop = lines.indexOf('add rule inet t out_myhvabc counter name egr_myhvabc drop');
    expect(drop).toBeGreaterThan(lines.indexOf(out.at(-1)!));
  });

  it('removes every element, chain and counter it may have made, each added first so a missing one is no error', () => {
    const lines = detachPolicyLines('t', { port: 'myhvabc', ipv4: '10.62.0.5', mac: '02:00:00:00:00:05' });
    for (const made of attachPolicyLines('t', {
      ...target,
      policy: { isolation: 'vm', egress: 'deny-all' },
    })) {
      const what = /^add (element|chain|counter) (\S+ \S+ \S+)(.*)$/.exec(made);
      if (!what) continue;
      expect(lines, made).toContain(`delete ${what[1]} ${what[2]}${what[3]}`);
      expect(lines.indexOf(`add ${what[1]} ${what[2]}${what[3]}`)).toBeLessThan(
        lines.indexOf(`delete ${what[1]} ${what[2]}${what[3]}`),
      );
    }
  });

  it('reads one VM’s counters from both tables and ignores other tables and VMs', () => {
    const json = {
      nftables: [
        { metainfo: {} },
        { counter: { family: 'bridge', table: 't', name: 'iso_myhvabc', packets: 2, bytes: 1 } },
        { counter: { family: 'inet', table: 't', name: 'iso_myhvabc', packets: 3, bytes: 1 } },
        { counter: { family: 'inet', table: 't', name: 'egr_myhvabc', packets: 7, bytes: 1 } },
        { counter: { family: 'inet', table: 'other', name: 'egr_myhvabc', packets: 100, bytes: 1 } },
        { counter: { family: 'inet', table: 't', name: 'egr_myhvdef', packets: 100, bytes: 1 } },
      ],
    };
    expect(parsePolicyCounters(json, 't', 'myhvabc')).toEqual({ egressDenied: 7, isolationDenied: 5 });
    expect(parsePolicyCounters(undefined, 't', 'myhvabc')).toEqual({ egressDenied: 0, isolationDenied: 0 });
  });

  it('makes nft identifiers of any interface name', () => {
    expect(policyTag('my-tap.0')).toBe('my_tap_0');
  });
});
