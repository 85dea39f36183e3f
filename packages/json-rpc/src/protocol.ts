import { z } from 'zod';

/** The only JSON-RPC version spoken here. */
export const JSON_RPC_VERSION = '2.0';

/** A request id. We send integers; a peer may use strings. */
export const jsonRpcIdSchema = z.union([z.string(), z.number().int()]);
/** The id of a JSON-RPC 2.0 request: a string or an integer. */
export type JsonRpcId = z.infer<typeof jsonRpcIdSchema>;

/** Params by name (our convention) or by position (valid JSON-RPC; a server may refuse it). */
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
/** A JSON-RPC 2.0 request (or, without `id`, a notification). */
export type JsonRpcRequest = z.infer<typeof jsonRpcRequestSchema>;

/** The `error` member of a failed response. */
export const jsonRpcErrorObjectSchema = z.object({
  code: z.number().int(),
  message: z.string(),
  data: z.unknown().optional(),
});
/** The `error` member of a failed response: code, message, optional data. */
export type JsonRpcErrorObject = z.infer<typeof jsonRpcErrorObjectSchema>;

/** A success response: `result` present (even when null). */
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

/** An error response: `error`, and `id: null` when the request's id could not be read. */
export const jsonRpcErrorResponseSchema = z.object({
  jsonrpc: z.literal(JSON_RPC_VERSION),
  // null when the server could not read the request's id (parse error, over-long line).
  id: jsonRpcIdSchema.nullable(),
  error: jsonRpcErrorObjectSchema,
});
export type JsonRpcErrorResponse = z.infer<typeof jsonRpcErrorResponseSchema>;

/** A response: exactly one of `result` or `error`. */
export const jsonRpcResponseSchema = z.union([jsonRpcErrorResponseSchema, jsonRpcSuccessResponseSchema]);
/** A response: exactly one of `result` or `error`. */
export type JsonRpcResponse = JsonRpcSuccessResponse | JsonRpcErrorResponse;

/** True for a valid request id: a string or an integer. */
export const isId = (id: unknown): id is JsonRpcId =>
  typeof id === 'string' || (typeof id === 'number' && Number.isInteger(id));

/**
 * True when `message` is a request `jsonRpcRequestSchema` accepts, for the common case only: plain checks cost a
 * fraction of a schema parse, which pipelined callers pay per message. False means "ask the schema", which also
 * words the error; a message this accepts is used as it is (unknown members stay, and nobody reads them).
 */
export function isPlainRequest(message: unknown): message is JsonRpcRequest {
  if (typeof message !== 'object' || message === null) return false;
  const { jsonrpc, method, params, id } = message as Record<string, unknown>;
  return (
    jsonrpc === JSON_RPC_VERSION &&
    typeof method === 'string' &&
    method.length > 0 &&
    (params === undefined || (typeof params === 'object' && params !== null)) &&
    (id === undefined || id === null || isId(id))
  );
}

/** True when `message` is a success response `jsonRpcSuccessResponseSchema` accepts (see `isPlainRequest`). */
export function isPlainSuccessResponse(message: object): message is JsonRpcSuccessResponse {
  const { jsonrpc, id } = message as Record<string, unknown>;
  return jsonrpc === JSON_RPC_VERSION && (id === null || isId(id)) && 'result' in message;
}

/**
 * A result already serialized as JSON, which a server sends as it is: for a large answer a handler can build from
 * cached pieces (myhvd's `vm.list` of a thousand VMs), serializing it again on every call costs more than the call.
 * The text must be one JSON value; the server does not check it.
 */
export class JsonText {
  readonly text: string;
  #bytes: Buffer | undefined;

  constructor(text: string) {
    this.text = text;
  }

  /** The text as UTF-8, encoded once however often it is sent. */
  get bytes(): Buffer {
    this.#bytes ??= Buffer.from(this.text, 'utf8');
    return this.#bytes;
  }

  /** The value itself, for a response serialized whole (inside a batch). */
  toJSON(): unknown {
    return JSON.parse(this.text);
  }
}
