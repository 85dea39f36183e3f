import { z } from 'zod';

/** The only JSON-RPC version mosnet speaks. */
export const JSON_RPC_VERSION = '2.0';

/** A request id. We send integers; a peer may use strings. */
export const jsonRpcIdSchema = z.union([z.string(), z.number().int()]);
/** The id of a JSON-RPC 2.0 request: a string or an integer. */
export type JsonRpcId = z.infer<typeof jsonRpcIdSchema>;

/** Params by name (mosnet's convention) or by position (valid JSON-RPC, rejected by our server). */
export const jsonRpcParamsSchema = z.union([z.record(z.string(), z.unknown()), z.array(z.unknown())]);

/**
 * A request. Without an `id` member it is a notification, which gets no response; `id: null` is a request (the
 * spec discourages it but allows it) and is answered with `id: null`.
 */
export const jsonRpcRequestSchema = z.object({
  jsonrpc: z.literal(JSON_RPC_VERSION),
  method: z.string().min(1),
  params: jsonRpcParamsSchema.optional(),
  id: jsonRpcIdSchema.nullable().optional(),
});
export type JsonRpcRequest = z.infer<typeof jsonRpcRequestSchema>;

/** The `error` member of a failed response. */
export const jsonRpcErrorObjectSchema = z.object({
  code: z.number().int(),
  message: z.string(),
  data: z.unknown().optional(),
});
export type JsonRpcErrorObject = z.infer<typeof jsonRpcErrorObjectSchema>;

export const jsonRpcSuccessResponseSchema = z
  .object({
    jsonrpc: z.literal(JSON_RPC_VERSION),
    // null answers a request sent with `id: null`.
    id: jsonRpcIdSchema.nullable(),
    result: z.unknown(),
  })
  // `z.unknown()` also accepts a missing key; a success response must carry `result`, even if null.
  .refine((response) => 'result' in response, { message: 'a success response needs result' });
export type JsonRpcSuccessResponse = z.infer<typeof jsonRpcSuccessResponseSchema>;

export const jsonRpcErrorResponseSchema = z.object({
  jsonrpc: z.literal(JSON_RPC_VERSION),
  // null when the server could not read the request's id (parse error, over-long line).
  id: jsonRpcIdSchema.nullable(),
  error: jsonRpcErrorObjectSchema,
});
export type JsonRpcErrorResponse = z.infer<typeof jsonRpcErrorResponseSchema>;

/** A response: exactly one of `result` or `error`. */
export const jsonRpcResponseSchema = z.union([jsonRpcErrorResponseSchema, jsonRpcSuccessResponseSchema]);
export type JsonRpcResponse = JsonRpcSuccessResponse | JsonRpcErrorResponse;
