import type { OperationOptions } from './capabilities.js';
import { abortError, invalidArgument, NetOpsError, throwIfAborted } from './errors.js';
import type { MyceliumNode } from './mycelium-node.js';
import { parseIPv6Cidr } from './validation.js';

/** Where a mycelium node's admin API listens unless told otherwise. */
export const DEFAULT_MYCELIUM_ADMIN_URL = 'http://127.0.0.1:8989';

/** Where the mycelium node's admin API is and how long a request may take. */
export interface MyceliumAdminApiOptions {
  /** Base URL of the node's admin API (default http://127.0.0.1:8989). */
  readonly url?: string;
  /** Per-request timeout in ms (default 5000). */
  readonly timeoutMs?: number;
  /** A fetch implementation (default the global one), e.g. for a proxy-free test double. */
  readonly fetch?: typeof fetch;
}

const connectionErrorCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

function errorCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** Reads a mycelium node's subnet from its admin HTTP API: `GET {url}/api/v1/admin` → `{ nodeSubnet }`. */
export class MyceliumAdminApi implements MyceliumNode {
  readonly url: string;
  readonly timeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor(options: MyceliumAdminApiOptions = {}) {
    const url = options.url ?? DEFAULT_MYCELIUM_ADMIN_URL;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (error) {
      throw invalidArgument('url', `${JSON.stringify(url)} is not a URL`, error);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw invalidArgument('url', `${JSON.stringify(url)} is not an http(s) URL`);
    this.url = url.replace(/\/+$/, '');
    const timeoutMs = options.timeoutMs ?? 5000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
      throw invalidArgument('timeoutMs', 'must be a positive number');
    this.timeoutMs = timeoutMs;
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  async nodeSubnet(options?: OperationOptions): Promise<string> {
    const callerSignal = options?.signal;
    throwIfAborted(callerSignal);
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = callerSignal ? AbortSignal.any([callerSignal, timeout]) : timeout;
    const endpoint = `${this.url}/api/v1/admin`;
    const details = { command: `GET ${endpoint}` };
    let body: unknown;
    try {
      const response = await this.#fetch(endpoint, { signal, headers: { accept: 'application/json' } });
      const text = await response.text();
      if (!response.ok) {
        throw new NetOpsError('BACKEND_FAILURE', `the mycelium admin API answered ${response.status}`, {
          details: { ...details, status: response.status, body: text.slice(0, 1000) },
        });
      }
      try {
        body = JSON.parse(text);
      } catch (error) {
        throw new NetOpsError('BACKEND_FAILURE', 'the mycelium admin API answered with invalid JSON', {
          cause: error,
          details: { ...details, body: text.slice(0, 1000) },
        });
      }
    } catch (error) {
      if (NetOpsError.isInstance(error)) throw error;
      if (signal.aborted) throw abortError(callerSignal?.aborted ? callerSignal : timeout);
      const code = errorCode(error);
      if (code === undefined || connectionErrorCodes.has(code)) {
        throw new NetOpsError(
          'BACKEND_UNAVAILABLE',
          `cannot reach the mycelium admin API at ${this.url}: is mycelium running with its API enabled?`,
          { cause: error, details: { ...details, ...(code ? { errno: code } : {}) } },
        );
      }
      throw new NetOpsError('BACKEND_FAILURE', `the request to ${endpoint} failed (${code})`, {
        cause: error,
        details,
      });
    }
    const nodeSubnet = (body as { nodeSubnet?: unknown } | null)?.nodeSubnet;
    try {
      const cidr = parseIPv6Cidr(nodeSubnet, 'nodeSubnet');
      return `${cidr.network}/${cidr.prefixLength}`;
    } catch (error) {
      throw new NetOpsError('BACKEND_FAILURE', 'the mycelium admin API answered without a valid nodeSubnet', {
        cause: error,
        details: { ...details, body },
      });
    }
  }
}
