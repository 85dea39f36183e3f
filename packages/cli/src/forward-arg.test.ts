import { describe, expect, it } from 'vitest';
import { CliError } from './errors.js';
import { parseForwardArg, parseHostPortArg } from './forward-arg.js';

describe('parseForwardArg', () => {
  it.each([
    ['8080:80', { hostPort: 8080, guestPort: 80 }],
    ['8080:80/tcp', { hostPort: 8080, guestPort: 80, protocol: 'tcp' }],
    ['127.0.0.1:5353:53/udp', { hostIp: '127.0.0.1', hostPort: 5353, guestPort: 53, protocol: 'udp' }],
  ])('parses %s', (text, expected) => {
    expect(parseForwardArg(text)).toEqual(expected);
  });

  it.each(['8080', '80:80:80:80', 'a:80', '8080:80/sctp', '8080:', '1e3:80', ':80'])(
    'rejects %s naming --forward',
    (text) => {
      try {
        parseForwardArg(text);
        expect.unreachable();
      } catch (error) {
        expect(CliError.isInstance(error) && error.code).toBe('INVALID_ARGUMENT');
        expect((error as CliError).details.field).toBe('--forward');
      }
    },
  );

  it('leaves ranges to the schema: 70000 parses as a number', () => {
    expect(parseForwardArg('70000:80').hostPort).toBe(70000);
  });
});

describe('parseHostPortArg', () => {
  it('defaults to tcp', () => {
    expect(parseHostPortArg('8080')).toEqual({ protocol: 'tcp', hostPort: 8080 });
    expect(parseHostPortArg('53/udp')).toEqual({ protocol: 'udp', hostPort: 53 });
  });

  it.each(['0', '65536', 'http', '80/icmp', ''])('rejects %j', (text) => {
    expect(() => parseHostPortArg(text)).toThrow(CliError);
  });
});
