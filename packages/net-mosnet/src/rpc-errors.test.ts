import { NetOpsError, netOpsErrorCodes } from '@my-hypervisor/net-ops';
import { describe, expect, it } from 'vitest';
import {
  mosnetErrorCodes,
  netOpsCodeForRpcCode,
  netOpsErrorFromRpcError,
  rpcCodeForNetOpsCode,
  rpcErrorFromError,
} from './rpc-errors.js';

describe('JSON-RPC error codes ↔ NetOpsError codes', () => {
  it('maps the issue’s fixed codes and the server range', () => {
    expect(netOpsCodeForRpcCode(-32601)).toBe('UNSUPPORTED');
    expect(netOpsCodeForRpcCode(-32602)).toBe('INVALID_ARGUMENT');
    for (let code = -32099; code <= -32000; code++) {
      const named = [-32010, -32011, -32012, -32013, -32014].includes(code);
      if (!named) expect(netOpsCodeForRpcCode(code)).toBe('BACKEND_FAILURE');
    }
    expect(netOpsCodeForRpcCode(-32700)).toBe('BACKEND_FAILURE');
    expect(netOpsCodeForRpcCode(1)).toBe('BACKEND_FAILURE');
  });

  it('round-trips every code a server can name, and folds the rest into BACKEND_FAILURE', () => {
    for (const code of netOpsErrorCodes) {
      const back = netOpsCodeForRpcCode(rpcCodeForNetOpsCode(code));
      const kept = [
        'INVALID_ARGUMENT',
        'NOT_FOUND',
        'ALREADY_EXISTS',
        'CONFLICT',
        'PERMISSION_DENIED',
        'UNSUPPORTED',
      ];
      expect(back, code).toBe(kept.includes(code) ? code : 'BACKEND_FAILURE');
    }
    const serverCodes = Object.values(mosnetErrorCodes).filter((c) => c >= -32099 && c <= -32000);
    expect(serverCodes.length).toBe(new Set(serverCodes).size);
  });
});

describe('netOpsErrorFromRpcError', () => {
  it('keeps the message, data and method, and lifts data.field', () => {
    const error = netOpsErrorFromRpcError(
      { code: -32602, message: 'bad port', data: { field: 'host_port', max: 65535 } },
      'mosnet.nat.add_forward',
    );
    expect(NetOpsError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: {
        command: 'mosnet.nat.add_forward',
        rpcCode: -32602,
        field: 'host_port',
        data: { max: 65535 },
      },
    });
    expect(error.message).toContain('bad port');
  });
});

describe('rpcErrorFromError', () => {
  it('carries the NetOpsError code and JSON-safe details in data', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const error = new NetOpsError('CONFLICT', 'taken', { details: { stderr: 'x', big: 1n, cyclic } });
    expect(rpcErrorFromError(error)).toEqual({
      code: -32012,
      message: 'taken',
      data: { code: 'CONFLICT', stderr: 'x', big: '1', cyclic: '[object Object]' },
    });
  });

  it('answers anything else as -32603', () => {
    expect(rpcErrorFromError(new TypeError('oops'))).toMatchObject({ code: -32603, message: 'oops' });
    expect(rpcErrorFromError('weird')).toMatchObject({ code: -32603 });
  });
});
