import { describe, expect, it } from 'vitest';
import { printedSysctlKey } from './sysctl.js';

describe('sysctl keys', () => {
  it('are printed back dotted, with dots inside names as slashes', () => {
    expect(printedSysctlKey('net/ipv4/conf/br.0/route_localnet')).toBe('net.ipv4.conf.br/0.route_localnet');
  });
});
