import { describe, expect, it } from 'vitest';
import { parseProcessConfinement } from './process-confinement.js';

const status = (groups: string) =>
  [
    'Name:\tcloud-hyperviso',
    'Uid:\t1500000001\t1500000001\t1500000001\t1500000001',
    'Gid:\t1500000001\t1500000001\t1500000001\t1500000001',
    `Groups:${groups}`,
    'NStgid:\t4242',
    'CapEff:\t0000000000000000',
    'NoNewPrivs:\t1',
    'Seccomp:\t2',
    '',
  ].join('\n');

describe('parseProcessConfinement', () => {
  it('reads a process without supplementary groups as having none (not the next line)', () => {
    const parsed = parseProcessConfinement(status('\t'), '0::/myhv/abc\n', 4242, 'vmm');
    expect(parsed.groups).toEqual([]);
    expect(parsed).toMatchObject({ uid: 1500000001, gid: 1500000001, noNewPrivs: true, seccomp: 2 });
    expect(parsed.cgroups).toEqual(['/myhv/abc']);
  });

  it('reads supplementary groups', () => {
    expect(parseProcessConfinement(status('\t36 993'), '', 1, 'vmm').groups).toEqual([36, 993]);
  });
});
