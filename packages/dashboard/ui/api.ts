import type { JournalEvent, Session, VmInfo, VmLog, VmSnapshot, VmStats } from './types';

/** The methods the page calls: params, then result. */
interface Methods {
  'vm.list': [Record<string, never>, VmInfo[]];
  'vm.get': [{ name: string }, VmInfo];
  'vm.create': [{ spec: Record<string, unknown> }, VmInfo];
  'vm.start': [{ name: string }, VmInfo];
  'vm.stop': [{ name: string }, VmInfo];
  'vm.restart': [{ name: string }, VmInfo];
  'vm.pause': [{ name: string }, VmInfo];
  'vm.resume': [{ name: string }, VmInfo];
  'vm.delete': [{ name: string; force?: boolean }, { name: string; id: string }];
  'vm.snapshot.create': [{ name: string }, VmSnapshot];
  'vm.snapshot.list': [{ name: string }, VmSnapshot[]];
  'vm.snapshot.remove': [{ name: string; id: string }, VmSnapshot];
  'vm.restore': [{ name: string; from?: string }, VmInfo];
  'vm.stats': [{ name: string }, VmStats];
  'vm.logs': [{ name: string; log?: 'serial' | 'vmm'; maxBytes?: number }, VmLog];
  'events.journal': [{ vm?: string; limit?: number }, JournalEvent[]];
}

export type MethodName = keyof Methods;

/**
 * A failed call: `code` is the daemon's error code (`INVALID_ARGUMENT`, `NOT_FOUND`, `WRONG_STATE`, …), or
 * `HTTP_<status>` / `NETWORK` when the dashboard server itself refused or did not answer.
 */
export class RpcError extends Error {
  readonly code: string;
  /** The spec field at fault (`memory`, `network.forwards[0].hostPort`), when the daemon names one. */
  readonly field: string | undefined;

  constructor(code: string, message: string, field?: string) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
    this.field = field;
  }
}

type Listener = () => void;
const loggedOutListeners = new Set<Listener>();
let loggedOut = false;
let session: Promise<Session | undefined> | undefined;
let nextId = 1;

/** True once any request was answered 401: the whole page then shows only the login hint. */
export function isLoggedOut(): boolean {
  return loggedOut;
}

export function onLoggedOut(listener: Listener): () => void {
  loggedOutListeners.add(listener);
  return () => loggedOutListeners.delete(listener);
}

export function markLoggedOut(): void {
  if (loggedOut) return;
  loggedOut = true;
  for (const listener of loggedOutListeners) listener();
}

async function fetchSession(): Promise<Session | undefined> {
  const response = await fetch('/session', { headers: { Accept: 'application/json' }, cache: 'no-store' });
  if (response.status === 401) {
    markLoggedOut();
    return undefined;
  }
  if (!response.ok) throw new RpcError(`HTTP_${response.status}`, `GET /session answered ${response.status}`);
  return (await response.json()) as Session;
}

/** The session (CSRF token, server version); undefined when logged out. Fetched once, again with `refresh`. */
export function getSession(refresh = false): Promise<Session | undefined> {
  if (refresh || !session) {
    session = fetchSession();
    // A failed fetch is not cached: the next call tries again.
    session.catch(() => {
      session = undefined;
    });
  }
  return session;
}

interface RpcResponse {
  result?: unknown;
  error?: { code: number; message: string; data?: { code?: unknown; details?: { field?: unknown } } };
}

async function post(body: string, token: string, signal: AbortSignal | undefined): Promise<Response> {
  try {
    return await fetch('/rpc', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': token, Accept: 'application/json' },
      body,
      cache: 'no-store',
      ...(signal ? { signal } : {}),
    });
  } catch (error) {
    if ((error as Error).name === 'AbortError') throw error;
    throw new RpcError('NETWORK', 'The dashboard server did not answer. Is myhvd still running?');
  }
}

/** Calls a daemon method through `POST /rpc`. Throws RpcError; a 401 also switches the page to the login hint. */
export async function rpc<M extends MethodName>(
  method: M,
  params: Methods[M][0],
  options: { signal?: AbortSignal } = {},
): Promise<Methods[M][1]> {
  const body = JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params });
  let current = await getSession();
  let response: Response | undefined;
  // A 403 may mean the session's token changed under us (a new login in another tab): fetch it again, retry once.
  for (let attempt = 0; attempt < 2; attempt++) {
    if (!current) throw new RpcError('HTTP_401', 'Not logged in');
    response = await post(body, current.csrfToken, options.signal);
    if (response.status !== 403 || attempt === 1) break;
    current = await getSession(true);
  }
  if (!response) throw new RpcError('NETWORK', 'No answer');
  if (response.status === 401) {
    markLoggedOut();
    throw new RpcError('HTTP_401', 'Not logged in');
  }
  if (response.status === 403) {
    throw new RpcError('HTTP_403', 'The server refused the request (CSRF or origin check). Reload the page.');
  }
  if (!response.ok) throw new RpcError(`HTTP_${response.status}`, `The server answered ${response.status}`);
  const answer = (await response.json()) as RpcResponse;
  if (answer.error) {
    const data = answer.error.data;
    const code = typeof data?.code === 'string' ? data.code : `RPC_${answer.error.code}`;
    const field = typeof data?.details?.field === 'string' ? data.details.field : undefined;
    throw new RpcError(code, answer.error.message, field);
  }
  return answer.result as Methods[M][1];
}

/** A readable line for any error a call can throw. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
