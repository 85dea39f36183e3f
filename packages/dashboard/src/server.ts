import { once } from 'node:events';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import type {
  JsonRpcCallContext,
  JsonRpcConnection,
  JsonRpcErrorObject,
  JsonRpcMethodHandler,
} from '@my-hypervisor/json-rpc';
import { JsonText } from '@my-hypervisor/json-rpc';
import { type WebSocket, WebSocketServer } from 'ws';
import { type Asset, defaultUiDir, loadAssets } from './assets.js';
import { cookieValue, SESSION_COOKIE, type Session, Sessions } from './auth.js';

/** The daemon methods a browser may call: VM work and reading events, not daemon administration. */
export const DASHBOARD_METHODS: readonly string[] = Object.freeze([
  'daemon.hello',
  'vm.list',
  'vm.get',
  'vm.create',
  'vm.start',
  'vm.stop',
  'vm.restart',
  'vm.delete',
  'vm.pause',
  'vm.resume',
  'vm.resize',
  'vm.stats',
  'vm.devices',
  'vm.logs',
  'vm.snapshot.create',
  'vm.snapshot.list',
  'vm.snapshot.remove',
  'vm.restore',
  'events.journal',
]);

/** An event as the dashboard streams it: anything JSON with the journal's time, pid and seq (and its VM). */
export interface DashboardEvent {
  readonly time: string;
  readonly pid: number;
  readonly seq: number;
  readonly vm?: string;
}

/** What the dashboard serves and where. The daemon wires it to its own handlers, journal and consoles. */
export interface DashboardOptions {
  /** The TCP port; 0 picks a free one (see `DashboardServer.port`). */
  readonly port: number;
  /**
   * The address to listen on. Default `127.0.0.1`. Anything but a loopback address is refused unless `tls` is
   * given: the session cookie and the console would otherwise cross the network in clear.
   */
  readonly host?: string;
  /** Certificate and key (PEM) to serve HTTPS instead of HTTP. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** Signs session cookies and CSRF tokens (≥ 32 bytes; `loadOrCreateSecret`). */
  readonly secret: Buffer;
  /** The daemon's handler table: `POST /rpc` calls go to the same handlers as the Unix socket's. */
  readonly methods: (method: string) => JsonRpcMethodHandler | undefined;
  /** How a handler's error is answered (the daemon's `rpcErrorFromError`). */
  readonly errorFor: (error: unknown) => JsonRpcErrorObject;
  /** Methods a browser may call. Default `DASHBOARD_METHODS`. */
  readonly allowedMethods?: Iterable<string>;
  /** Follows events from `since` on (the journal with `follow`), until `signal` aborts. */
  readonly events: (options: {
    readonly vm?: string;
    readonly since: Date;
    readonly signal: AbortSignal;
  }) => AsyncIterable<DashboardEvent>;
  /** Attaches to a VM's serial console (BUSY, WRONG_STATE and NOT_FOUND errors carry `code`). */
  readonly console: (vm: string, signal: AbortSignal) => Promise<Duplex>;
  /** The built front end. Default: this package's `dist/ui`. */
  readonly uiDir?: string;
  /** How long a login code works. Default 60 s. */
  readonly loginCodeTtlMs?: number;
  /** How long a session lasts after login. Default 12 h. */
  readonly sessionTtlMs?: number;
  /** The version `/session` reports. */
  readonly version?: string;
}

/** A listening dashboard. */
export interface DashboardServer extends AsyncDisposable {
  /** Its base URL (`http://127.0.0.1:8080`). */
  readonly url: string;
  readonly port: number;
  /** A one-time login link (valid `loginCodeTtlMs`, used once) and when it expires. */
  loginUrl(): { readonly url: string; readonly expiresAt: string };
  /** Stops listening and ends open event streams and consoles. */
  close(): Promise<void>;
}

/** A stable code and, for a bad option, the field: what the daemon turns into its own error. */
export class DashboardError extends Error {
  readonly code: 'INVALID_ARGUMENT' | 'ADDRESS_IN_USE' | 'LISTEN_FAILED';
  readonly field: string | undefined;
  constructor(
    code: DashboardError['code'],
    message: string,
    options: { field?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DashboardError';
    this.code = code;
    this.field = options.field;
  }
}

const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";
const MAX_BODY_BYTES = 1024 * 1024;
const SSE_HEARTBEAT_MS = 15_000;
/** Output an event stream or console may have waiting for a slow browser before it is cut off or paused. */
const MAX_BUFFERED_BYTES = 1024 * 1024;
const VM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Checks where the dashboard would listen, without listening: a TCP port, and TLS for anything but loopback.
 * INVALID_ARGUMENT naming `port` or `host`. `createDashboardServer` checks the same; a caller may check first,
 * before work of its own.
 */
export function checkListenOptions(options: Pick<DashboardOptions, 'port' | 'host' | 'tls'>): void {
  const { port, host = '127.0.0.1' } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new DashboardError('INVALID_ARGUMENT', 'port must be a whole number from 0 to 65535', {
      field: 'port',
    });
  }
  if (!isLoopback(host) && !options.tls) {
    throw new DashboardError(
      'INVALID_ARGUMENT',
      `host: ${host} is not a loopback address; serving the dashboard beyond this machine needs TLS (a certificate and key)`,
      { field: 'host' },
    );
  }
}

/** Starts the dashboard's HTTP(S) server; resolves once it listens. */
export async function createDashboardServer(options: DashboardOptions): Promise<DashboardServer> {
  checkListenOptions(options);
  const host = options.host ?? '127.0.0.1';
  const { port } = options;
  const assets = loadAssets(options.uiDir ?? defaultUiDir());
  const sessions = new Sessions(options.secret, {
    codeTtlMs: options.loginCodeTtlMs ?? 60_000,
    sessionTtlMs: options.sessionTtlMs ?? 12 * 60 * 60_000,
  });
  const allowed = new Set(options.allowedMethods ?? DASHBOARD_METHODS);
  const secure = options.tls !== undefined;
  const scheme = secure ? 'https' : 'http';
  const closing = new AbortController();
  let boundPort = port;
  let connectionIds = 0;

  const headers = (extra: Record<string, string> = {}): Record<string, string> => ({
    'content-security-policy': CSP,
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    ...(secure ? { 'strict-transport-security': 'max-age=31536000' } : {}),
    ...extra,
  });
  const send = (res: ServerResponse, status: number, body: string, type: string, extra = {}) => {
    res.writeHead(status, headers({ 'content-type': type, 'cache-control': 'no-store', ...extra }));
    res.end(body);
  };
  const sendJson = (res: ServerResponse, status: number, value: unknown) =>
    send(res, status, JSON.stringify(value), 'application/json');
  const page = (res: ServerResponse, status: number, title: string, text: string) =>
    send(
      res,
      status,
      `<!doctype html><html lang="en"><meta charset="utf-8"><title>${title}</title><h1>${title}</h1><p>${text}</p></html>`,
      'text/html; charset=utf-8',
    );

  /** On loopback the Host header must name this server (no DNS rebinding); elsewhere any name reaching it. */
  const hostAllowed = (value: string | undefined): boolean => {
    if (!value) return false;
    if (!isLoopback(host)) return true;
    const names = ['127.0.0.1', 'localhost', '[::1]', ...(host.startsWith('127.') ? [host] : [])];
    return names.some((name) => value === `${name}:${boundPort}`);
  };
  const originAllowed = (req: IncomingMessage): boolean =>
    req.headers.origin === `${scheme}://${req.headers.host}`;
  const sessionOf = (req: IncomingMessage): Session | undefined =>
    sessions.verify(cookieValue(req.headers.cookie, SESSION_COOKIE));

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!hostAllowed(req.headers.host)) {
      return page(res, 421, 'Wrong host', 'This server answers only to the address it listens on.');
    }
    const url = new URL(req.url ?? '/', `${scheme}://${req.headers.host}`);
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (method === 'GET' || method === 'HEAD') {
      const asset = assets.get(path);
      if (asset) return serveAsset(req, res, asset, headers);
      if (path === '/login') return login(res, url.searchParams.get('code'));
      if (path === '/session') {
        const session = sessionOf(req);
        if (!session) return sendJson(res, 401, { error: 'not logged in' });
        return sendJson(res, 200, { csrfToken: session.csrfToken, version: options.version ?? '' });
      }
      if (path === '/events') {
        if (!sessionOf(req)) return sendJson(res, 401, { error: 'not logged in' });
        return streamEvents(req, res, url);
      }
      return page(res, 404, 'Not found', 'Nothing is here.');
    }
    if (method === 'POST' && (path === '/rpc' || path === '/logout')) {
      const session = sessionOf(req);
      if (!session) return sendJson(res, 401, { error: 'not logged in' });
      if (!originAllowed(req) || !sessions.checkCsrf(session, header(req, 'x-csrf-token'))) {
        return sendJson(res, 403, {
          error: 'refused: the request must come from the dashboard page (Origin and CSRF token)',
        });
      }
      if (path === '/logout') {
        return send(res, 204, '', 'text/plain', { 'set-cookie': cookie('', 0) });
      }
      return rpc(req, res);
    }
    res.setHeader('allow', 'GET, HEAD, POST');
    return page(res, 405, 'Method not allowed', `${method} is not served here.`);
  };

  const cookie = (value: string, maxAgeS: number) =>
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${secure ? '; Secure' : ''}`;

  const login = (res: ServerResponse, code: string | null) => {
    const redeemed = code ? sessions.redeem(code) : undefined;
    if (!redeemed) {
      return page(
        res,
        401,
        'Login link not valid',
        'This login link was already used or has expired. On the host, run <code>myhv dashboard url</code> for a new one.',
      );
    }
    const maxAge = Math.max(0, Math.floor((redeemed.session.expiresAt - Date.now()) / 1000));
    // Redirected to `/`: the code leaves the address bar and the history.
    return send(res, 303, '', 'text/plain', { location: '/', 'set-cookie': cookie(redeemed.cookie, maxAge) });
  };

  const rpc = async (req: IncomingMessage, res: ServerResponse) => {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json')
      return sendJson(res, 415, { error: 'Content-Type must be application/json' });
    let text: string;
    try {
      text = await readBody(req, MAX_BODY_BYTES);
    } catch {
      res.setHeader('connection', 'close');
      return sendJson(res, 413, { error: `the request body is larger than ${MAX_BODY_BYTES} bytes` });
    }
    let request: unknown;
    try {
      request = JSON.parse(text);
    } catch {
      return sendJson(res, 200, rpcError(null, -32700, 'parse error: the body is not JSON'));
    }
    const { id, method, params, jsonrpc } = (request ?? {}) as Record<string, unknown>;
    const validId = typeof id === 'string' || (typeof id === 'number' && Number.isInteger(id));
    const validParams =
      params === undefined || (typeof params === 'object' && params !== null && !Array.isArray(params));
    if (jsonrpc !== '2.0' || typeof method !== 'string' || !validId || !validParams) {
      return sendJson(
        res,
        200,
        rpcError(
          validId ? id : null,
          -32600,
          'invalid request: a JSON-RPC 2.0 call with an id and named params',
        ),
      );
    }
    const handler = allowed.has(method) ? options.methods(method) : undefined;
    if (!handler) {
      return sendJson(res, 200, rpcError(id, -32601, `method not available to the dashboard: ${method}`));
    }
    const call = new AbortController();
    const abort = () => call.abort(new Error('the browser went away'));
    res.once('close', () => {
      if (!res.writableFinished) abort();
    });
    closing.signal.addEventListener('abort', abort, { once: true });
    const connection: JsonRpcConnection = {
      id: ++connectionIds,
      get closed() {
        return call.signal.aborted;
      },
      signal: call.signal,
      notify: () => false,
    };
    const context: JsonRpcCallContext = { signal: call.signal, id, connection };
    try {
      const result = await handler((params ?? {}) as Record<string, unknown>, context);
      const head = `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":`;
      const body = result instanceof JsonText ? result.text : JSON.stringify(result ?? null);
      send(res, 200, `${head}${body}}`, 'application/json');
    } catch (error) {
      sendJson(res, 200, { jsonrpc: '2.0', id, error: options.errorFor(error) });
    } finally {
      closing.signal.removeEventListener('abort', abort);
    }
  };

  const streamEvents = async (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const vm = url.searchParams.get('vm') ?? undefined;
    if (vm !== undefined && !VM_NAME.test(vm)) return sendJson(res, 400, { error: 'vm: not a VM name' });
    const after = parseEventId(header(req, 'last-event-id'));
    const stream = new AbortController();
    const stop = () => stream.abort();
    res.once('close', stop);
    closing.signal.addEventListener('abort', stop, { once: true });
    // A stream is one long response: its connection is not kept for another (and closes when the server does).
    res.writeHead(
      200,
      headers({ 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'close' }),
    );
    res.write('retry: 2000\n\n');
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), SSE_HEARTBEAT_MS);
    heartbeat.unref();
    // Resuming after `Last-Event-ID`: from that event's millisecond on, skipping up to and including it.
    let skipping = after !== undefined;
    try {
      for await (const event of options.events({
        ...(vm === undefined ? {} : { vm }),
        since: after ? new Date(after.ms) : new Date(),
        signal: stream.signal,
      })) {
        const ms = Date.parse(event.time);
        if (skipping && after) {
          if (ms === after.ms && !(event.pid === after.pid && event.seq === after.seq)) continue;
          skipping = false;
          if (ms === after.ms) continue;
        }
        res.write(`id: ${ms}-${event.pid}-${event.seq}\nevent: journal\ndata: ${JSON.stringify(event)}\n\n`);
        // A browser that does not read is cut off; it reconnects with Last-Event-ID and misses nothing.
        if (res.writableLength > MAX_BUFFERED_BYTES) break;
      }
    } catch {
      // The journal failed or the stream was stopped: the browser reconnects.
    } finally {
      clearInterval(heartbeat);
      closing.signal.removeEventListener('abort', stop);
      res.end();
    }
  };

  const consoles = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024, perMessageDeflate: false });
  const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refuse = (status: string) => {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (!hostAllowed(req.headers.host)) return refuse('421 Misdirected Request');
    const match = /^\/vms\/([^/?]+)\/console(?:\?.*)?$/.exec(req.url ?? '');
    if (!match) return refuse('404 Not Found');
    // A WebSocket is not bound by the same-origin policy: its Origin is what tells a page of ours from another site's.
    if (!originAllowed(req)) return refuse('403 Forbidden');
    const vm = safeDecode(match[1]!);
    consoles.handleUpgrade(req, socket, head, (ws) => {
      if (!sessionOf(req)) return ws.close(4401, 'not logged in');
      if (vm === undefined || !VM_NAME.test(vm)) return ws.close(4400, 'not a VM name');
      void bridgeConsole(ws, vm, options.console, closing.signal);
    });
  };

  const server: Server = secure
    ? createHttpsServer({ cert: options.tls!.cert, key: options.tls!.key })
    : createHttpServer();
  server.on('request', (req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent)
        page(res, 500, 'Internal error', 'The dashboard failed to answer; see the daemon log.');
      else res.destroy();
    });
  });
  server.on('upgrade', upgrade);
  server.maxConnections = 512;
  server.headersTimeout = 10_000;
  server.requestTimeout = 60_000;
  try {
    server.listen({ host, port });
    await once(server, 'listening');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new DashboardError(
      code === 'EADDRINUSE' ? 'ADDRESS_IN_USE' : 'LISTEN_FAILED',
      `the dashboard cannot listen on ${host}:${port}: ${(error as Error).message}`,
      { field: code === 'EADDRINUSE' ? 'port' : 'host', cause: error },
    );
  }
  const address = server.address();
  boundPort = typeof address === 'object' && address ? address.port : port;
  const shownHost = host === '0.0.0.0' || host === '::' ? hostname() : isIP(host) === 6 ? `[${host}]` : host;
  const url = `${scheme}://${shownHost}:${boundPort}`;

  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      closing.abort();
      for (const client of consoles.clients) client.terminate();
      consoles.close();
      server.closeIdleConnections();
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      // Streams end on `closing`; whatever still hangs on is cut after a moment.
      const cut = setTimeout(() => server.closeAllConnections(), 1_000);
      await done;
      clearTimeout(cut);
    })();
    return closed;
  };
  return {
    url,
    port: boundPort,
    loginUrl: () => {
      const { code, expiresAt } = sessions.issueCode();
      return { url: `${url}/login?code=${code}`, expiresAt: new Date(expiresAt).toISOString() };
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Bridges a WebSocket to a VM's console: serial bytes both ways, the browser paused when it reads slowly. */
async function bridgeConsole(
  ws: WebSocket,
  vm: string,
  open: DashboardOptions['console'],
  closing: AbortSignal,
): Promise<void> {
  const attach = new AbortController();
  const onClosing = () => ws.close(1001, 'the dashboard is stopping');
  closing.addEventListener('abort', onClosing, { once: true });
  ws.once('close', () => {
    attach.abort();
    closing.removeEventListener('abort', onClosing);
  });
  let serial: Duplex;
  try {
    serial = await open(vm, attach.signal);
  } catch (error) {
    if (ws.readyState === ws.OPEN) ws.close(closeCodeOf(error), reasonOf(error));
    return;
  }
  if (ws.readyState !== ws.OPEN) {
    serial.destroy();
    return;
  }
  const resumeWhenDrained = () => {
    if (serial.isPaused() && ws.bufferedAmount < MAX_BUFFERED_BYTES / 2) serial.resume();
  };
  serial.on('data', (chunk: Buffer) => {
    ws.send(chunk, { binary: true }, resumeWhenDrained);
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) serial.pause();
  });
  serial.once('close', () => ws.close(1000, 'the console closed (the VM stopped)'));
  serial.on('error', () => {});
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    serial.write(bytes);
  });
  ws.once('close', () => serial.destroy());
  serial.resume();
}

/** The WebSocket close code for a console that could not be attached (4xxx: ours, after HTTP's). */
function closeCodeOf(error: unknown): number {
  switch ((error as { code?: unknown })?.code) {
    case 'BUSY':
      return 4409;
    case 'WRONG_STATE':
      return 4412;
    case 'NOT_FOUND':
      return 4404;
    case 'INVALID_ARGUMENT':
      return 4400;
    default:
      return 4500;
  }
}

/** A close reason: at most 123 bytes, as the WebSocket protocol allows. */
function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : 'the console could not be attached';
  let reason = message;
  while (Buffer.byteLength(reason) > 123) reason = `${reason.slice(0, reason.length - 2)}…`;
  return reason;
}

function serveAsset(
  req: IncomingMessage,
  res: ServerResponse,
  asset: Asset,
  headers: (extra: Record<string, string>) => Record<string, string>,
): void {
  const cache = asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache';
  if (req.headers['if-none-match'] === asset.etag) {
    res.writeHead(304, headers({ etag: asset.etag, 'cache-control': cache }));
    res.end();
    return;
  }
  const gzip = asset.gzip !== undefined && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const body = gzip ? asset.gzip! : asset.body;
  res.writeHead(
    200,
    headers({
      'content-type': asset.type,
      'content-length': String(body.length),
      'cache-control': cache,
      etag: asset.etag,
      vary: 'accept-encoding',
      ...(gzip ? { 'content-encoding': 'gzip' } : {}),
    }),
  );
  res.end(req.method === 'HEAD' ? undefined : body);
}

function rpcError(id: unknown, code: number, message: string) {
  return { jsonrpc: '2.0', id: id ?? null, error: { code, message } };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function parseEventId(value: string | undefined): { ms: number; pid: number; seq: number } | undefined {
  const match = value ? /^(\d{1,15})-(\d{1,10})-(\d{1,15})$/.exec(value) : null;
  if (!match) return undefined;
  return { ms: Number(match[1]), pid: Number(match[2]), seq: Number(match[3]) };
}

function safeDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new RangeError('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** True for the addresses only this machine reaches. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
