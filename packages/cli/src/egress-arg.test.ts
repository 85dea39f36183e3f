import { parseVmSpec } from '@my-hypervisor/vm-manager';
import { describe, expect, it } from 'vitest';
import { refusal } from '../test/refusal.js';
import { formatEgress, parseEgressArg, parseIsolationArg } from './egress-arg.js';
import { CliError } from './errors.js';
import { createSpecInput } from './spec-input.js';

describe('--egress', () => {
  it.each([
    [['allow-all'], 'allow-all'],
    [['deny-all'], 'deny-all'],
    [['10.0.0.0/8'], [{ cidr: '10.0.0.0/8' }]],
    // A bare address is one host.
    [['192.0.2.10'], [{ cidr: '192.0.2.10/32' }]],
    [['192.0.2.10:tcp:80+443'], [{ cidr: '192.0.2.10/32', proto: 'tcp', ports: [80, 443] }]],
    [['198.51.100.0/24:udp'], [{ cidr: '198.51.100.0/24', proto: 'udp' }]],
    [['198.51.100.53:53'], [{ cidr: '198.51.100.53/32', ports: [53] }]],
    [['0.0.0.0/0:icmp'], [{ cidr: '0.0.0.0/0', proto: 'icmp' }]],
    [
      ['10.0.0.0/8, 192.0.2.10:tcp:443', '198.51.100.53:udp:53'],
      [
        { cidr: '10.0.0.0/8' },
        { cidr: '192.0.2.10/32', proto: 'tcp', ports: [443] },
        { cidr: '198.51.100.53/32', proto: 'udp', ports: [53] },
      ],
    ],
  ])('%j', (values, egress) => {
    expect(parseEgressArg(values)).toEqual(egress);
  });

  it.each([
    [['']],
    [['10.0.0.0/8,']],
    [['allow-all,10.0.0.0/8']],
    [['deny-all', 'allow-all']],
    [['allow']],
    [['10.0.0.0/33']],
    [['300.1.1.1']],
    [['10.0.0.0/8:sctp']],
    [['10.0.0.0/8:80:tcp']],
    [['10.0.0.0/8:tcp:0']],
    [['10.0.0.0/8:tcp:65536']],
    [['10.0.0.0/8:tcp:80,443']],
    [['10.0.0.0/8:tcp:1e3']],
    [['10.0.0.0/8:icmp:8']],
    [['10.0.0.0/8:tcp:80:443']],
    [[':tcp:80']],
    [[Array.from({ length: 65 }, (_, i) => `10.0.${i}.0/24`).join(',')]],
  ])('refuses %j naming --egress', (values) => {
    const error = refusal(() => parseEgressArg(values));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.details.field).toBe('--egress');
  });

  it('prints a policy as the flag takes it', () => {
    const rules = ['10.0.0.0/8', '192.0.2.10/32:tcp:80+443', '198.51.100.53/32:udp:53', '0.0.0.0/0:icmp'];
    const egress = parseEgressArg([rules.join(',')]);
    expect(formatEgress(egress!)).toBe(rules.join(', '));
    expect(parseEgressArg([formatEgress(egress!).replaceAll(' ', '')])).toEqual(egress);
    expect(formatEgress('deny-all')).toBe('deny-all');
  });
});

describe('--isolation', () => {
  it('takes vm or none, and refuses anything else naming the flag', () => {
    expect(parseIsolationArg('vm')).toBe('vm');
    expect(parseIsolationArg('none')).toBe('none');
    for (const bad of ['VM', 'yes', '']) {
      const error = refusal(() => parseIsolationArg(bad));
      expect(error.details.field).toBe('--isolation');
    }
  });
});

describe('vm create flags → spec', () => {
  it('puts --isolation and --egress in network, as the spec schema takes them', async () => {
    const { input } = await createSpecInput(
      'a',
      { kernel: '/k', isolation: 'vm', egress: ['10.0.0.0/8,192.0.2.10:tcp:443'] },
      undefined,
    );
    expect(parseVmSpec(input).network).toMatchObject({
      isolation: 'vm',
      egress: [{ cidr: '10.0.0.0/8' }, { cidr: '192.0.2.10/32', proto: 'tcp', ports: [443] }],
    });
  });

  it('refuses them with --no-network or --file (usage), and a bad value before reading anything', async () => {
    for (const flags of [
      { kernel: '/k', network: false as const, isolation: 'vm' },
      { kernel: '/k', network: false as const, egress: ['deny-all'] },
      { file: '/nonexistent.yaml', egress: ['deny-all'] },
      { file: '/nonexistent.yaml', isolation: 'none' },
    ]) {
      const error = await createSpecInput(flags.file ? undefined : 'a', flags, undefined).catch(
        (e: unknown) => e,
      );
      expect(CliError.isInstance(error) && error.code, String(error)).toBe('USAGE');
    }
    const bad = await createSpecInput('a', { kernel: '/k', egress: ['10.0.0.0/8:tcp:0'] }, undefined).catch(
      (e: unknown) => e,
    );
    expect(CliError.isInstance(bad) && bad.details.field).toBe('--egress');
  });
});
