import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { JsonText } from '@my-hypervisor/json-rpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  createDashboardServer,
  DashboardError,
  type DashboardEvent,
  type DashboardOptions,
  type DashboardServer,
  loadOrCreateSecret,
} from '../src/index.js';

const exec = promisify(execFile);

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

/** One HTTP request with full control of the headers (fetch may not set Host or Origin). */
function request(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer; ca?: string } = {},
): Promise<Reply> {
  const target = new URL(url);
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      target,
      {
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        ...(options.ca ? { ca: options.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

let root: string;
let uiDir: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'myhv-dashboard-'));
  uiDir = join(root, 'ui');
  await mkdir(join(uiDir, 'assets'), { recursive: true });
  await writeFile(
    join(uiDir, 'index.html'),
    '<!doctype html><html><head><script type="module" src="/assets/app-abc123.js"></script></head><body></body></html>',
  );
  await writeFile(
    join(uiDir, 'assets', 'app-abc123.js'),
    `console.log(${JSON.stringify('x'.repeat(4000))});`,
  );
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A journal fed by the test: `push` appends, `follow` yields what is at or after `since`, then new ones. */
function fakeJournal() {
  const events: DashboardEvent[] = [];
  const waiters = new Set<() => void>();
  let seq = 0;
  return {
    push(vm: string, extra: Record<string, unknown> = {}, time = new Date()) {
      events.push({ time: time.toISOString(), pid: 42, seq: ++seq, vm, ...extra } as DashboardEvent);
      for (const wake of waiters) wake();
    },
    async *follow({ vm, since, signal }: { vm?: string; since: Date; signal: AbortSignal }) {
      let next = 0;
      while (!signal.aborted) {
        while (next < events.length) {
          const event = events[next++]!;
          if (Date.parse(event.time) >= since.getTime() && (vm === undefined || event.vm === vm)) yield event;
        }
        await new Promise<void>((resolve) => {
          const wake = () => {
            waiters.delete(wake);
            signal.removeEventListener('abort', wake);
            resolve();
          };
          waiters.add(wake);
          signal.addEventListener('abort', wake, { once: true });
        });
      }
    },
  };
}

async function start(overrides: Partial<DashboardOptions> = {}) {
  const journal = fakeJournal();
  const calls: { method: string; params: unknown }[] = [];
  const consoles: { vm: string; guest: PassThrough; toGuest: Buffer[] }[] = [];
  const server = await createDashboardServer({
    port: 0,
    secret: randomBytes(32),
    uiDir,
    version: '1.2.3',
    errorFor: (error) => ({
      code: -32001,
      message: (error as Error).message,
      data: { code: (error as { code?: string }).code, details: { field: 'memory' } },
    }),
    methods: (method) => {
      if (method === 'vm.list')
        return async (params) => {
          calls.push({ method, params });
          return new JsonText('[{"name":"a"}]');
        };
      if (method === 'vm.get')
        return async (params) => {
          calls.push({ method, params });
          return { name: params.name };
        };
      if (method === 'vm.create') {
        return async () => {
          throw Object.assign(new Error('memory: must be at least 16 MiB'), { code: 'INVALID_ARGUMENT' });
        };
      }
      if (method === 'host.reconcile' || method === 'dashboard.login') return async () => 'should never run';
      return undefined;
    },
    events: (options) => journal.follow(options),
    console: async (vm) => {
      if (vm === 'busy')
        throw Object.assign(new Error('busy: another console is attached'), { code: 'BUSY' });
      if (vm === 'off')
        throw Object.assign(new Error('off: it has no serial console'), { code: 'WRONG_STATE' });
      const fromGuest = new PassThrough();
      const toGuest: Buffer[] = [];
      consoles.push({ vm, guest: fromGuest, toGuest });
      return new Duplex({
        read() {},
        write(chunk, _enc, done) {
          toGuest.push(chunk as Buffer);
          done();
        },
        construct(done) {
          fromGuest.on('data', (c) => this.push(c));
          fromGuest.on('end', () => this.destroy());
          done();
        },
      });
    },
    ...overrides,
  });
  const base = server.url;
  const origin = base;
  return { server, base, origin, journal, calls, consoles };
}

/** Logs in with a fresh link: the cookie header and the CSRF token. */
async function login(server: DashboardServer, base: string) {
  const link = server.loginUrl();
  const reply = await request(link.url.replace(/^https?:\/\/[^/]+/, base));
  expect(reply.status).toBe(303);
  const cookie = String(reply.headers['set-cookie']).split(';')[0]!;
  const session = await request(`${base}/session`, { headers: { cookie } });
  const { csrfToken } = JSON.parse(session.text) as { csrfToken: string };
  return { cookie, csrfToken };
}

function rpc(base: string, body: unknown, headers: Record<string, string>) {
  return request(`${base}/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

describe('the dashboard server', () => {
  it('serves the page with strict security headers, and hashed assets immutable and gzipped', async () => {
    const { server, base } = await start();
    await using _ = server;
    const page = await request(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.text).toContain('/assets/app-abc123.js');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(page.headers['content-security-policy']).not.toContain('unsafe-inline');
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.headers['referrer-policy']).toBe('no-referrer');
    expect(page.headers['cache-control']).toBe('no-cache');
    const js = await request(`${base}/assets/app-abc123.js`, { headers: { 'accept-encoding': 'gzip' } });
    expect(js.headers['content-encoding']).toBe('gzip');
    expect(js.headers['cache-control']).toContain('immutable');
    expect(gunzipSync(js.body).toString()).toContain('xxxx');
    const again = await request(`${base}/assets/app-abc123.js`, {
      headers: { 'if-none-match': String(js.headers.etag) },
    });
    expect(again.status).toBe(304);
    expect((await request(`${base}/assets/../../etc/passwd`)).status).toBe(404);
  });

  it('answers 404 for anything else, and 421 to a Host header that is not its own (DNS rebinding)', async () => {
    const { server, base } = await start();
    await using _ = server;
    expect((await request(`${base}/nope`)).status).toBe(404);
    expect((await request(`${base}/`, { headers: { host: `evil.example:${server.port}` } })).status).toBe(
      421,
    );
    expect((await request(`${base}/`, { headers: { host: `localhost:${server.port}` } })).status).toBe(200);
  });

  it('logs in with a one-time link: an HttpOnly SameSite=Strict cookie, the code gone from the address bar', async () => {
    const { server, base } = await start();
    await using _ = server;
    expect((await request(`${base}/session`)).status).toBe(401);
    const link = server.loginUrl();
    expect(link.url).toMatch(new RegExp(`^${base}/login\\?code=[A-Za-z0-9_-]{32}$`));
    expect(Date.parse(link.expiresAt) - Date.now()).toBeGreaterThan(50_000);
    const reply = await request(link.url);
    expect(reply.status).toBe(303);
    expect(reply.headers.location).toBe('/');
    const setCookie = String(reply.headers['set-cookie']);
    expect(setCookie).toMatch(/^myhv_session=[^;]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
    const cookie = setCookie.split(';')[0]!;
    const session = await request(`${base}/session`, { headers: { cookie } });
    expect(session.status).toBe(200);
    expect(JSON.parse(session.text)).toEqual({
      csrfToken: expect.stringMatching(/^[\w-]{43}$/),
      version: '1.2.3',
    });
    // Used once.
    expect((await request(link.url)).status).toBe(401);
    expect((await request(`${base}/login?code=made-up`)).status).toBe(401);
    expect((await request(`${base}/login`)).status).toBe(401);
  });

  it('refuses an expired login code and a forged or expired session cookie', async () => {
    const { server: quick } = await start({ loginCodeTtlMs: 1 });
    await using ___ = quick;
    const stale = quick.loginUrl();
    await new Promise((r) => setTimeout(r, 10));
    expect((await request(stale.url)).status).toBe(401);
    const { server, base } = await start({ sessionTtlMs: 1_500 });
    await using _ = server;
    const { server: other, base: otherBase } = await start();
    await using __ = other;
    // A cookie signed by another secret (another daemon) proves nothing here.
    const foreign = await login(other, otherBase);
    expect((await request(`${base}/session`, { headers: { cookie: foreign.cookie } })).status).toBe(401);
    const [name, value] = foreign.cookie.split('=') as [string, string];
    const [id, , mac] = value.split('.');
    const extended = `${name}=${id}.${(Date.now() + 1e9).toString(36)}.${mac}`;
    expect((await request(`${otherBase}/session`, { headers: { cookie: extended } })).status).toBe(401);
    const mine = await login(server, base);
    expect((await request(`${base}/session`, { headers: { cookie: mine.cookie } })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1_600));
    expect((await request(`${base}/session`, { headers: { cookie: mine.cookie } })).status).toBe(401);
  });

  it('runs allowed methods through the handler table, and refuses calls without session, CSRF token or Origin', async () => {
    const { server, base, origin, calls } = await start();
    await using _ = server;
    const { cookie, csrfToken } = await login(server, base);
    const ok = { cookie, origin, 'x-csrf-token': csrfToken };
    const list = await rpc(base, { jsonrpc: '2.0', id: 1, method: 'vm.list' }, ok);
    expect(list.status).toBe(200);
    expect(JSON.parse(list.text)).toEqual({ jsonrpc: '2.0', id: 1, result: [{ name: 'a' }] });
    const got = await rpc(base, { jsonrpc: '2.0', id: 'x', method: 'vm.get', params: { name: 'web' } }, ok);
    expect(JSON.parse(got.text)).toEqual({ jsonrpc: '2.0', id: 'x', result: { name: 'web' } });
    expect(calls.map((c) => c.method)).toEqual(['vm.list', 'vm.get']);

    const call = { jsonrpc: '2.0', id: 2, method: 'vm.list' };
    expect((await rpc(base, call, { origin, 'x-csrf-token': csrfToken })).status).toBe(401);
    expect((await rpc(base, call, { cookie, origin })).status).toBe(403);
    expect((await rpc(base, call, { cookie, origin, 'x-csrf-token': `${csrfToken}x` })).status).toBe(403);
    expect((await rpc(base, call, { cookie, 'x-csrf-token': csrfToken })).status).toBe(403);
    expect((await rpc(base, call, { ...ok, origin: 'http://evil.example' })).status).toBe(403);
    expect(
      (
        await request(`${base}/rpc`, {
          method: 'POST',
          headers: { ...ok, 'content-type': 'text/plain' },
          body: '{}',
        })
      ).status,
    ).toBe(415);
    expect(calls).toHaveLength(2);
  });

  it("answers errors the daemon way, and refuses methods that are not the browser's", async () => {
    const { server, base, origin } = await start();
    await using _ = server;
    const { cookie, csrfToken } = await login(server, base);
    const ok = { cookie, origin, 'x-csrf-token': csrfToken };
    const bad = JSON.parse(
      (await rpc(base, { jsonrpc: '2.0', id: 3, method: 'vm.create', params: {} }, ok)).text,
    );
    expect(bad.error).toEqual({
      code: -32001,
      message: 'memory: must be at least 16 MiB',
      data: { code: 'INVALID_ARGUMENT', details: { field: 'memory' } },
    });
    for (const method of ['host.reconcile', 'dashboard.login', 'vm.nope']) {
      const reply = JSON.parse((await rpc(base, { jsonrpc: '2.0', id: 4, method }, ok)).text);
      expect(reply.error.code).toBe(-32601);
      expect(reply.error.message).toContain(method);
    }
    expect(JSON.parse((await rpc(base, '{nope', ok)).text).error.code).toBe(-32700);
    expect(JSON.parse((await rpc(base, { id: 5, method: 'vm.list' }, ok)).text).error.code).toBe(-32600);
    expect(
      JSON.parse((await rpc(base, [{ jsonrpc: '2.0', id: 6, method: 'vm.list' }], ok)).text).error.code,
    ).toBe(-32600);
    const huge = await rpc(
      base,
      { jsonrpc: '2.0', id: 7, method: 'vm.get', params: { name: 'x'.repeat(2 ** 20) } },
      ok,
    );
    expect(huge.status).toBe(413);
  });

  it('streams journal events over SSE and resumes after Last-Event-ID without loss or repeats', async () => {
    const { server, base, journal } = await start();
    await using _ = server;
    const { cookie } = await login(server, base);
    expect((await request(`${base}/events`)).status).toBe(401);
    const controller = new AbortController();
    const response = await fetch(`${base}/events`, { headers: { cookie }, signal: controller.signal });
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const reader = response.body!.getReader();
    let text = '';
    const until = async (pattern: RegExp) => {
      while (!pattern.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${pattern}: ${text}`);
        text += Buffer.from(value).toString();
      }
    };
    await until(/retry: 2000/);
    journal.push('web', { type: 'status', status: 'running' });
    journal.push('db', { type: 'status', status: 'stopped' });
    await until(/"vm":"db"/);
    const ids = [...text.matchAll(/^id: (.+)$/gm)].map((m) => m[1]!);
    expect(ids).toHaveLength(2);
    expect(text).toMatch(
      /event: journal\ndata: \{"time":"[^"]+","pid":42,"seq":1,"vm":"web","type":"status","status":"running"\}/,
    );
    controller.abort();
    // Meanwhile two more; a reconnect after the first id gets exactly the three after it.
    journal.push('web', { type: 'status', status: 'paused' });
    journal.push('web', { type: 'status', status: 'running' });
    const resumed = new AbortController();
    const again = await fetch(`${base}/events?vm=web`, {
      headers: { cookie, 'last-event-id': ids[0]! },
      signal: resumed.signal,
    });
    const r2 = again.body!.getReader();
    let text2 = '';
    while ((text2.match(/^data: /gm) ?? []).length < 2)
      text2 += Buffer.from((await r2.read()).value!).toString();
    resumed.abort();
    const seqs = [...text2.matchAll(/"seq":(\d+)/g)].map((m) => Number(m[1]));
    expect(seqs).toEqual([3, 4]);
    expect(
      (await request(`${base}/events?vm=${encodeURIComponent('../x')}`, { headers: { cookie } })).status,
    ).toBe(400);
  });

  it('bridges a WebSocket to the console both ways, and refuses other origins, no session, busy and stopped VMs', async () => {
    const { server, base, origin, consoles } = await start();
    await using _ = server;
    const { cookie } = await login(server, base);
    const wsUrl = `${base.replace(/^http/, 'ws')}/vms/web/console`;
    const ws = new WebSocket(wsUrl, { headers: { cookie, origin } });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    await expect.poll(() => consoles.length).toBe(1);
    const received: Buffer[] = [];
    ws.on('message', (data: Buffer) => received.push(data));
    consoles[0]!.guest.write('probe guest: hello\r\n');
    await expect.poll(() => Buffer.concat(received).toString()).toBe('probe guest: hello\r\n');
    ws.send(Buffer.from('ls\r'));
    await expect.poll(() => Buffer.concat(consoles[0]!.toGuest).toString()).toBe('ls\r');
    // The VM stops: the console closes with a reason.
    const closed = new Promise<[number, string]>((resolve) =>
      ws.once('close', (code, why) => resolve([code, why.toString()])),
    );
    consoles[0]!.guest.end();
    expect(await closed).toEqual([1000, 'the console closed (the VM stopped)']);

    const closeOf = (url: string, headers: Record<string, string>) =>
      new Promise<[number, string] | string>((resolve) => {
        const socket = new WebSocket(url, { headers });
        socket.once('close', (code, why) => resolve([code, why.toString()]));
        socket.once('unexpected-response', (_req, res) => resolve(`HTTP ${res.statusCode}`));
        socket.once('error', () => {});
      });
    const wsBase = base.replace(/^http/, 'ws');
    expect(await closeOf(`${wsBase}/vms/busy/console`, { cookie, origin })).toEqual([
      4409,
      'busy: another console is attached',
    ]);
    expect(await closeOf(`${wsBase}/vms/off/console`, { cookie, origin })).toEqual([
      4412,
      'off: it has no serial console',
    ]);
    expect(await closeOf(wsUrl, { origin })).toEqual([4401, 'not logged in']);
    expect(await closeOf(wsUrl, { cookie, origin: 'http://evil.example' })).toBe('HTTP 403');
    expect(await closeOf(`${wsBase}/vms/web/other`, { cookie, origin })).toBe('HTTP 404');
    expect(consoles).toHaveLength(1);
  });

  it('refuses a non-loopback address without TLS, and serves HTTPS with a Secure cookie when given a certificate', async () => {
    await expect(start({ host: '0.0.0.0' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'host',
    });
    await expect(start({ port: 70_000 })).rejects.toBeInstanceOf(DashboardError);
    const dir = await mkdtemp(join(root, 'tls-'));
    await exec('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ]);
    const cert = await readFile(join(dir, 'cert.pem'), 'utf8');
    const key = await readFile(join(dir, 'key.pem'), 'utf8');
    const { server, base } = await start({ tls: { cert, key } });
    await using _ = server;
    expect(base).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const reply = await request(server.loginUrl().url, { ca: cert });
    expect(reply.status).toBe(303);
    expect(String(reply.headers['set-cookie'])).toMatch(/; Secure$/);
    expect((await request(`${base}/`, { ca: cert })).headers['strict-transport-security']).toBeDefined();
  });

  it('fails clearly when the port is taken or the front end is not built', async () => {
    const { server } = await start();
    await using _ = server;
    await expect(start({ port: server.port })).rejects.toMatchObject({
      code: 'ADDRESS_IN_USE',
      field: 'port',
    });
    await expect(start({ uiDir: join(root, 'missing') })).rejects.toThrow(/front end is missing/);
  });

  it('ends open event streams when it closes', async () => {
    const { server, base } = await start();
    const { cookie } = await login(server, base);
    const response = await fetch(`${base}/events`, { headers: { cookie } });
    const reader = response.body!.getReader();
    await reader.read();
    const started = Date.now();
    await server.close();
    for (;;) if ((await reader.read()).done) break;
    expect(Date.now() - started).toBeLessThan(900);
  });
});

describe('loadOrCreateSecret', () => {
  it('makes a 0600 secret once and reads the same one back; refuses one others may read', async () => {
    const path = join(root, 'dashboard.secret');
    const made = loadOrCreateSecret(path);
    expect(made).toHaveLength(32);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(loadOrCreateSecret(path).equals(made)).toBe(true);
    const loose = join(root, 'loose.secret');
    await writeFile(loose, randomBytes(32), { mode: 0o644 });
    expect(() => loadOrCreateSecret(loose)).toThrow(/nobody else may read or write/);
    const short = join(root, 'short.secret');
    await writeFile(short, 'abc', { mode: 0o600 });
    expect(() => loadOrCreateSecret(short)).toThrow(/truncated/);
  });
});
