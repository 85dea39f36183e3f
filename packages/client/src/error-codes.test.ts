import { VmManagerError, type VmManagerErrorCode } from '@my-hypervisor/vm-manager';
import { describe, expect, it } from 'vitest';
import { daemonErrorCodes, managerErrorFromRpcError, rpcErrorFromError } from './error-codes.js';

describe('daemon error codes', () => {
  it('give every VmManagerError code its own JSON-RPC code, and the round trip keeps code, message, details', () => {
    const codes = Object.keys(daemonErrorCodes) as VmManagerErrorCode[];
    expect(new Set(Object.values(daemonErrorCodes)).size).toBe(codes.length);
    for (const code of codes) {
      const original = new VmManagerError(code, `${code}: why`, { details: { field: 'cpus', vm: 'web' } });
      const wire = JSON.parse(JSON.stringify(rpcErrorFromError(original)));
      expect(wire.code).toBe(daemonErrorCodes[code]);
      const back = managerErrorFromRpcError(wire);
      expect(VmManagerError.isInstance(back)).toBe(true);
      expect(back).toMatchObject({ code, message: `${code}: why`, details: { field: 'cpus', vm: 'web' } });
    }
  });

  it('keeps details JSON cannot carry as text, and answers INTERNAL_ERROR for anything else', () => {
    const error = new VmManagerError('VMM_FAILED', 'x', { details: { big: 10n } });
    expect(rpcErrorFromError(error).data).toEqual({ code: 'VMM_FAILED', details: { big: '10' } });
    expect(rpcErrorFromError(new Error('boom'))).toEqual({ code: -32603, message: 'boom' });
    expect(managerErrorFromRpcError({ code: -32603, message: 'boom' })).toBeUndefined();
    expect(
      managerErrorFromRpcError({ code: -32001, message: 'x', data: { code: 'MADE_UP' } }),
    ).toBeUndefined();
  });
});
