import { describe, expect, it } from 'vitest';
import { abortError, invalidArgument, NetOpsError, netOpsErrorCodes, throwIfAborted } from './errors.js';

describe('NetOpsError', () => {
  it('carries code, cause and details', () => {
    const cause = new Error('exit 2');
    const error = new NetOpsError('BACKEND_FAILURE', 'ip failed', {
      cause,
      details: { command: ['ip', 'link'], exitCode: 2, stderr: 'RTNETLINK answers: nope\n' },
    });
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('NetOpsError');
    expect(error.code).toBe('BACKEND_FAILURE');
    expect(error.cause).toBe(cause);
    expect(error.longMessage).toBe(
      'ip failed\ncommand: ip link\nexit code: 2\nstderr: RTNETLINK answers: nope',
    );
    expect(new NetOpsError('NOT_FOUND', 'x').details).toEqual({});
    expect('cause' in new NetOpsError('NOT_FOUND', 'x')).toBe(false);
  });

  it('isInstance holds across a second installed copy (same Symbol.for marker, different class)', () => {
    const marker = Symbol.for('@my-hypervisor/net-ops/NetOpsError');
    // What a second copy of the package would construct: another class, the same registered symbol.
    class OtherCopyNetOpsError extends Error {
      readonly code = 'CONFLICT';
      constructor() {
        super('from another copy');
        Object.defineProperty(this, marker, { value: true });
      }
    }
    const foreign = new OtherCopyNetOpsError();
    expect(foreign instanceof NetOpsError).toBe(false);
    expect(NetOpsError.isInstance(foreign)).toBe(true);
  });

  it.each([new Error('x'), { code: 'CONFLICT' }, null, undefined, 'NetOpsError', { [Symbol('x')]: true }])(
    'isInstance is false for %o',
    (value) => expect(NetOpsError.isInstance(value)).toBe(false),
  );

  it('lists every code once', () => {
    expect(new Set(netOpsErrorCodes).size).toBe(10);
    expect(netOpsErrorCodes).toContain('ABORTED');
  });

  it('invalidArgument names the field', () => {
    const error = invalidArgument('rule.hostPort', 'too big');
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.details.field).toBe('rule.hostPort');
  });
});

describe('aborts', () => {
  it('an aborted signal is ABORTED with the reason as cause', () => {
    const controller = new AbortController();
    const reason = new Error('user pressed ^C');
    controller.abort(reason);
    const error = abortError(controller.signal);
    expect(error.code).toBe('ABORTED');
    expect(error.cause).toBe(reason);
    expect(() => throwIfAborted(controller.signal)).toThrow(NetOpsError);
  });

  it('a timed-out signal is TIMEOUT', async () => {
    const signal = AbortSignal.timeout(1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(abortError(signal).code).toBe('TIMEOUT');
    expect(abortError(AbortSignal.any([signal])).code).toBe('TIMEOUT');
  });

  it('throwIfAborted passes a live or missing signal', () => {
    expect(() => throwIfAborted(undefined)).not.toThrow();
    expect(() => throwIfAborted(new AbortController().signal)).not.toThrow();
  });
});
