import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NetOpsError } from './errors.js';
import { MyceliumAdminApi } from './mycelium-admin-api.js';
import { expectNetOpsError } from './testing/index.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A local HTTP server that answers like mycelium's admin API, or misbehaves as a test tells it. */
let handler: Handler;
let server: Server;
let url: string;
const requests: { method?: string; url?: string }[] = [];

const answerLikeMycelium: Handler = (req, res) => {
  if (req.method === 'GET' && req.url === '/api/v1/admin') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ nodeSubnet: '4a2:e1f0:1b3c:9d7e::/64', nodePubkey: 'ab'.repeat(32) }));
    return;
  }
  res.statusCode = 404;
  res.end('not found');
};

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push({ method: req.method, url: req.url });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(() => {
  handler = answerLikeMycelium;
  requests.length = 0;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

handler = answerLikeMycelium;

describe('MyceliumAdminApi', () => {
  it('reads nodeSubnet from GET /api/v1/admin', async () => {
    const api = new MyceliumAdminApi({ url: `${url}/` });
    expect(await api.nodeSubnet()).toBe('4a2:e1f0:1b3c:9d7e::/64');
    expect(requests).toEqual([{ method: 'GET', url: '/api/v1/admin' }]);
  });

  it('defaults to http://127.0.0.1:8989', () => {
    expect(new MyceliumAdminApi().url).toBe('http://127.0.0.1:8989');
  });

  it('normalises the subnet to its network', async () => {
    handler = (_req, res) => res.end(JSON.stringify({ nodeSubnet: '4A2:E1F0:1B3C:9D7E:1:2:3:4/64' }));
    expect(await new MyceliumAdminApi({ url }).nodeSubnet()).toBe('4a2:e1f0:1b3c:9d7e::/64');
  });

  it('a refused connection is BACKEND_UNAVAILABLE', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const error = await expectNetOpsError(
      new MyceliumAdminApi({ url: `http://127.0.0.1:${port}` }).nodeSubnet(),
      'BACKEND_UNAVAILABLE',
    );
    expect(error.details.errno).toBe('ECONNREFUSED');
  });

  it.each([500, 404, 401])('status %i is BACKEND_FAILURE with the status kept', async (status) => {
    handler = (_req, res) => {
      res.statusCode = status;
      res.end('nope');
    };
    const error = await expectNetOpsError(new MyceliumAdminApi({ url }).nodeSubnet(), 'BACKEND_FAILURE');
    expect(error.details.status).toBe(status);
  });

  it.each([
    ['not JSON', 'hello'],
    ['no nodeSubnet', JSON.stringify({ nodePubkey: 'x' })],
    ['a number', JSON.stringify({ nodeSubnet: 42 })],
    ['an IPv4 subnet', JSON.stringify({ nodeSubnet: '10.0.0.0/24' })],
    ['null', 'null'],
  ])('a body with %s is BACKEND_FAILURE', async (_what, body) => {
    handler = (_req, res) => res.end(body);
    await expectNetOpsError(new MyceliumAdminApi({ url }).nodeSubnet(), 'BACKEND_FAILURE');
  });

  it('a node that never answers is TIMEOUT after timeoutMs', async () => {
    handler = () => {};
    const started = Date.now();
    await expectNetOpsError(new MyceliumAdminApi({ url, timeoutMs: 100 }).nodeSubnet(), 'TIMEOUT');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("the caller's signal aborts a pending request with ABORTED", async () => {
    handler = () => {};
    const controller = new AbortController();
    const pending = new MyceliumAdminApi({ url }).nodeSubnet({ signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await expectNetOpsError(pending, 'ABORTED');
  });

  it('an already-aborted signal sends nothing', async () => {
    await expectNetOpsError(
      new MyceliumAdminApi({ url }).nodeSubnet({ signal: AbortSignal.abort() }),
      'ABORTED',
    );
    expect(requests).toEqual([]);
  });

  it.each(['not a url', 'ftp://127.0.0.1', 'file:///etc/passwd'])('rejects url %s', (bad) => {
    let error: unknown;
    try {
      new MyceliumAdminApi({ url: bad });
    } catch (e) {
      error = e;
    }
    expect(NetOpsError.isInstance(error) && error.code).toBe('INVALID_ARGUMENT');
  });
});
