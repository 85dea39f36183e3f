import { describe, expect, it } from 'vitest';
import {
  isPlainRequest,
  isPlainSuccessResponse,
  jsonRpcRequestSchema,
  jsonRpcSuccessResponseSchema,
} from './protocol.js';

// The fast checks may say "ask the schema" (false) for anything, but must never accept what the schema refuses.
const requests: unknown[] = [
  { jsonrpc: '2.0', method: 'vm.get', params: { name: 'a' }, id: 1 },
  { jsonrpc: '2.0', method: 'vm.get', params: [1], id: 'x' },
  { jsonrpc: '2.0', method: 'vm.get', id: null },
  { jsonrpc: '2.0', method: 'notify' },
  { jsonrpc: '2.0', method: 'm', id: 1, extra: true },
  { jsonrpc: '2.0', method: '', id: 1 },
  { jsonrpc: '1.0', method: 'm', id: 1 },
  { method: 'm', id: 1 },
  { jsonrpc: '2.0', method: 7, id: 1 },
  { jsonrpc: '2.0', method: 'm', id: 1.5 },
  { jsonrpc: '2.0', method: 'm', id: true },
  { jsonrpc: '2.0', method: 'm', id: {} },
  { jsonrpc: '2.0', method: 'm', params: null, id: 1 },
  { jsonrpc: '2.0', method: 'm', params: 'a', id: 1 },
  { jsonrpc: '2.0', method: 'm', params: 3, id: 1 },
  null,
  [],
  'request',
  7,
];

const responses: object[] = [
  { jsonrpc: '2.0', id: 1, result: { name: 'a' } },
  { jsonrpc: '2.0', id: 'x', result: null },
  { jsonrpc: '2.0', id: null, result: [] },
  { jsonrpc: '2.0', id: 1, result: undefined },
  { jsonrpc: '2.0', id: 1, result: 1, extra: 2 },
  { jsonrpc: '2.0', id: 1 },
  { jsonrpc: '2.0', result: 1 },
  { jsonrpc: '2.0', id: 1.5, result: 1 },
  { jsonrpc: '2.0', id: false, result: 1 },
  { jsonrpc: '1.0', id: 1, result: 1 },
  { id: 1, result: 1 },
];

describe('the fast protocol checks agree with the schemas', () => {
  it.each(requests.map((r) => [JSON.stringify(r) ?? String(r), r]))('request %s', (_label, request) => {
    const fast = isPlainRequest(request);
    const schema = jsonRpcRequestSchema.safeParse(request).success;
    if (fast) expect(schema).toBe(true);
    // The common shapes are taken by the fast path, not left to the schema.
    if (schema && (request as { method?: string }).method !== '') expect(fast).toBe(true);
  });

  it.each(responses.map((r) => [JSON.stringify(r), r]))('response %s', (_label, response) => {
    const fast = isPlainSuccessResponse(response);
    expect(fast).toBe(jsonRpcSuccessResponseSchema.safeParse(response).success);
  });
});
