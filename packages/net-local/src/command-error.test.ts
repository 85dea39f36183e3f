import { describe, expect, it } from 'vitest';
import { classifyErrorText, commandError } from './command-error.js';

describe('classifyErrorText', () => {
  it.each([
    ['RTNETLINK answers: File exists', 'ALREADY_EXISTS'],
    ['Error: Could not process rule: File exists', 'ALREADY_EXISTS'],
    ['ioctl(TUNSETIFF): Device or resource busy', 'CONFLICT'],
    ['Error: interval overlaps with an existing one', 'CONFLICT'],
    ['Cannot find device "tap0"', 'NOT_FOUND'],
    ['Device "br0" does not exist.', 'NOT_FOUND'],
    ['Error: Could not process rule: No such file or directory', 'NOT_FOUND'],
    ['RTNETLINK answers: Operation not permitted', 'PERMISSION_DENIED'],
    ['sysctl: permission denied on key "net.ipv4.ip_forward"', 'PERMISSION_DENIED'],
    ['Cannot open network namespace "x": No such file or directory', 'BACKEND_UNAVAILABLE'],
    ['exec of "nft" failed: No such file or directory', 'BACKEND_UNAVAILABLE'],
    ['RTNETLINK answers: Invalid argument', 'BACKEND_FAILURE'],
  ])('%s → %s', (text, code) => {
    expect(classifyErrorText(text)).toBe(code);
  });
});

describe('commandError', () => {
  it('keeps command, exit code, stderr and line; the message is short and says what to do', () => {
    const error = commandError({
      program: 'ip',
      command: ['ip', '-batch', '-'],
      exitCode: 1,
      stderr: 'RTNETLINK answers: Operation not permitted\nCommand failed -:3\n',
      text: 'RTNETLINK answers: Operation not permitted',
      line: 3,
    });
    expect(error.code).toBe('PERMISSION_DENIED');
    expect(error.message).toContain('run as root');
    expect(error.details).toEqual({
      command: ['ip', '-batch', '-'],
      exitCode: 1,
      stderr: 'RTNETLINK answers: Operation not permitted\nCommand failed -:3\n',
      line: 3,
    });
    expect(error.longMessage).toContain('exit code: 1');
  });

  it('names the missing program and its Debian package', () => {
    const error = commandError({
      program: 'ip',
      command: ['ip', 'netns', 'exec', 'ns', 'iptables-save'],
      exitCode: 1,
      stderr: 'exec of "iptables-save" failed: No such file or directory\n',
    });
    expect(error.code).toBe('BACKEND_UNAVAILABLE');
    expect(error.message).toContain('apt-get install iptables');
    expect(error.details.missingProgram).toBe('iptables-save');
  });
});
