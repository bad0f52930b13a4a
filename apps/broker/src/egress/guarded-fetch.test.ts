import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { EgressError } from './address-guard.ts';
import { createGuardedFetch } from './guarded-fetch.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

/** A real loopback HTTP server whose behaviour each test sets, recording what it received. */
async function startServer(host = '127.0.0.1') {
  let handler: Handler = (_req, res) => res.end('ok');
  const seen: { url: string; method: string; headers: IncomingMessage['headers']; body: string }[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      seen.push({ url: req.url ?? '', method: req.method ?? '', headers: req.headers, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    seen,
    handle: (h: Handler) => {
      handler = h;
    },
  };
}

/** The fetch failed the way undici's does, for the reason the guard gives. */
async function refused(promise: Promise<unknown>, reason: EgressError['reason'], code?: string) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof TypeError, `expected a TypeError, got ${String(error)}`);
    assert.ok(
      error.cause instanceof EgressError,
      `expected an EgressError cause, got ${String(error.cause)}`,
    );
    assert.equal(error.cause.reason, reason, error.message);
    if (code !== undefined) assert.equal(error.cause.code, code);
    return true;
  });
}

describe('guarded fetch', () => {
  let s: Awaited<ReturnType<typeof startServer>>;
  let other: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    s = await startServer();
    other = await startServer('127.0.0.2');
  });
  after(() => {
    for (const x of [s, other]) {
      x.server.closeAllConnections();
      x.server.close();
    }
  });
  const allowing = (extra: Partial<Parameters<typeof createGuardedFetch>[0]> = {}) =>
    createGuardedFetch({
      allowCidrs: ['127.0.0.1/32'],
      timeoutMs: 2000,
      maxResponseBytes: 64 * 1024,
      ...extra,
    });

  test('refuses loopback in every notation, link-local, private and mapped forms; nothing is sent', async () => {
    s.seen.length = 0;
    const strict = createGuardedFetch({ allowCidrs: [], timeoutMs: 2000, maxResponseBytes: 1024 });
    for (const host of [
      '127.0.0.1',
      '2130706433',
      '0177.0.0.1',
      '0x7f.1',
      '127.1',
      '127.0.0.1.',
      '[::ffff:127.0.0.1]',
      '[::1]',
      '[::]',
      '0',
      '169.254.169.254',
      '10.0.0.1',
      '192.168.1.1',
      '[fe80::1]',
      '[fd00::1]',
      '[64:ff9b::7f00:1]',
    ]) {
      await refused(
        strict(`http://${host}:${s.port}/token`, { method: 'POST', body: 'secret=1' }),
        'address_not_allowed',
        'ECONNREFUSED',
      );
    }
    assert.equal(s.seen.length, 0, 'no request reached the server');
  });

  test('answers like fetch once allowed: status, headers, body, form bodies sent as given', async () => {
    s.handle((_req, res, body) => {
      res.writeHead(201, { 'content-type': 'text/plain', 'x-two': ['a', 'b'] });
      res.end(`got ${body}`);
    });
    s.seen.length = 0;
    const response = await allowing()(`http://127.0.0.1:${s.port}/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'r1' }),
      headers: { accept: 'application/json' },
    });
    assert.equal(response.status, 201);
    assert.equal(response.headers.get('x-two'), 'a, b');
    assert.equal(await response.text(), 'got grant_type=refresh_token&refresh_token=r1');
    assert.equal(s.seen[0]!.headers['content-type'], 'application/x-www-form-urlencoded;charset=UTF-8');
    assert.equal(s.seen[0]!.headers.accept, 'application/json');
  });

  test('checks every address a name resolves to, and connects to the one it checked', async () => {
    s.seen.length = 0;
    let lookups = 0;
    const rebinding = async (host: string) => {
      lookups++;
      if (host === 'mixed.example')
        return [
          { address: '93.184.216.34', family: 4 },
          { address: '10.0.0.7', family: 4 },
        ];
      return [{ address: lookups === 1 ? '127.0.0.1' : '169.254.169.254', family: 4 }];
    };
    s.handle((req, res) => res.end(req.headers.host));
    const fetcher = allowing({ resolve: rebinding });
    const answer = await fetcher(`http://idp.example:${s.port}/x`);
    assert.equal(await answer.text(), `idp.example:${s.port}`, 'the Host header keeps the name');
    assert.equal(lookups, 1);
    await refused(fetcher('https://mixed.example/'), 'address_not_allowed');
  });

  test("redirect 'manual' returns the 3xx; 'follow' checks every hop; 'error' fails", async () => {
    s.handle((req, res) => {
      if (req.url === '/out') {
        res.writeHead(307, { location: `http://127.0.0.2:${other.port}/inside` });
        return res.end();
      }
      if (req.url === '/same') {
        res.writeHead(302, { location: '/landed' });
        return res.end();
      }
      res.end(`landed ${req.headers.authorization ?? 'without credential'}`);
    });
    other.seen.length = 0;
    const fetcher = allowing();
    const manual = await fetcher(`http://127.0.0.1:${s.port}/out`, { redirect: 'manual' });
    assert.equal(manual.status, 307);
    await refused(
      fetcher(`http://127.0.0.1:${s.port}/out`, { method: 'POST', body: 'x' }),
      'address_not_allowed',
    );
    await refused(fetcher(`http://127.0.0.1:${s.port}/out`, { redirect: 'error' }), 'too_many_redirects');
    assert.equal(other.seen.length, 0, 'the host inside the network was never reached');
    const same = await fetcher(`http://127.0.0.1:${s.port}/same`, { headers: { authorization: 'Bearer t' } });
    assert.equal(await same.text(), 'landed Bearer t');
    assert.equal(same.url, `http://127.0.0.1:${s.port}/landed`);
  });

  test('a followed redirect to another origin carries no credential', async () => {
    other.handle((req, res) =>
      res.end(JSON.stringify({ authorization: req.headers.authorization, key: req.headers['x-api-key'] })),
    );
    s.handle((_req, res) => {
      res.writeHead(302, { location: `http://127.0.0.2:${other.port}/landed` });
      res.end();
    });
    const fetcher = allowing({ allowCidrs: ['127.0.0.1/32', '127.0.0.2/32'] });
    const answer = await fetcher(`http://127.0.0.1:${s.port}/cross`, {
      headers: { authorization: 'Bearer secret', 'x-api-key': 'k' },
    });
    assert.deepEqual(await answer.json(), {});
  });

  test("the caller's signal is the deadline, and its reason is what rejects", async () => {
    s.handle(() => {
      /* never answers */
    });
    await assert.rejects(
      allowing()(`http://127.0.0.1:${s.port}/slow`, { signal: AbortSignal.timeout(100) }),
      (error: Error) => error.name === 'TimeoutError',
    );
    const quick = allowing({ timeoutMs: 100 });
    await assert.rejects(quick(`http://127.0.0.1:${s.port}/slow`), (e: Error) => e.name === 'TimeoutError');
  });

  test('an answer over the limit fails instead of being cut', async () => {
    s.handle((_req, res) => res.end('x'.repeat(10_000)));
    await refused(allowing({ maxResponseBytes: 1000 })(`http://127.0.0.1:${s.port}/big`), 'too_large');
  });

  test('an origin-locked client fetches its origin only', async () => {
    s.handle((_req, res) => res.end('ok'));
    const locked = allowing({ origin: `http://127.0.0.1:${s.port}`, keepAlive: true });
    assert.equal(await (await locked(`http://127.0.0.1:${s.port}/v1/x`)).text(), 'ok');
    await refused(locked(`http://127.0.0.1:${other.port}/v1/x`), 'bad_url');
    locked.close();
  });

  test("a refused connection keeps the socket's code, as undici's fetch does", async () => {
    const closed = await startServer();
    await new Promise<void>((resolve) => closed.server.close(() => resolve()));
    await assert.rejects(allowing()(`http://127.0.0.1:${closed.port}/`), (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.equal((error.cause as { code?: string }).code, 'ECONNREFUSED');
      return true;
    });
  });
});
