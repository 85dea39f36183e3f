import { describe, expect, it } from 'vitest';
import { ChvApiError, chvErrorCodes } from './errors.js';

describe('ChvApiError', () => {
  it('keeps code, status, message chain and request, and a long message for logs', () => {
    const error = new ChvApiError('NOT_CREATED', 'vm.boot failed: VM config is missing', {
      status: 404,
      messages: ['Error from API', 'The VM could not boot', 'VM config is missing'],
      method: 'PUT',
      path: '/api/v1/vm.boot',
      details: { logTail: 'line 1\nline 2\n' },
    });
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('ChvApiError');
    expect(error.code).toBe('NOT_CREATED');
    expect(error.longMessage).toContain('request: PUT /api/v1/vm.boot');
    expect(error.longMessage).toContain('vmm: Error from API: The VM could not boot: VM config is missing');
    expect(error.longMessage).toContain('line 2');
  });

  it('isInstance works across copies of the package (Symbol.for marker) and rejects look-alikes', () => {
    const foreign = Object.assign(new Error('x'), { code: 'INTERNAL' });
    Object.defineProperty(foreign, Symbol.for('@my-hypervisor/chv-client/ChvApiError'), { value: true });
    expect(ChvApiError.isInstance(foreign)).toBe(true);
    expect(ChvApiError.isInstance(Object.assign(new Error('x'), { code: 'INTERNAL' }))).toBe(false);
    expect(ChvApiError.isInstance(null)).toBe(false);
    expect(ChvApiError.isInstance(new ChvApiError('TIMEOUT', 't'))).toBe(true);
  });

  it('lists every code once', () => {
    expect(new Set(chvErrorCodes).size).toBe(chvErrorCodes.length);
    expect(chvErrorCodes).toEqual(
      expect.arrayContaining([
        'NOT_CREATED',
        'NOT_FOUND',
        'CONFLICT',
        'INVALID_CONFIG',
        'BUSY',
        'WRONG_STATE',
      ]),
    );
    expect(chvErrorCodes).toEqual(expect.arrayContaining(['INTERNAL', 'TIMEOUT', 'UNAVAILABLE', 'ABORTED']));
  });
});
