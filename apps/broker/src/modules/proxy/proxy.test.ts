import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { NexusError } from '../../errors/nexus-error.ts';
import { createProxy, type ProxyCredential } from './proxy.ts';

/**
 * The proxy's upstream pool and the egress guard (decision 0019): a host name is resolved and
 * checked when a connection opens, never per request, and a connection is never opened to an
 * address the guard refuses, even after the name has been answered once (DNS rebinding). The
 * resolver is the test's (the guard's `resolve` option); the upstream is a real local server.
 */
describe('proxy upstream pool and egress guard', () => {
  let upstream: Server;
  let port = 0;
  const seen: { path: string; key: string | undefined; socket: number }[] = [];
  const sockets = new WeakMap<object, number>();
  let opened = 0;

  before(async () => {
    upstream = createServer((req: IncomingMessage, res) => {
      let id = sockets.get(req.socket);
      if (id === undefined) {
        opened += 1;
        id = opened;
        sockets.set(req.socket, id);
      }
      seen.push({ path: req.url ?? '', key: req.headers['x-api-key'] as string | undefined, socket: id });
      // `/close` ends the connection after the answer, so the next call must open another.
      if (req.url === '/close') res.setHeader('connection', 'close');
      if (req.url?.startsWith('/twice')) {
        // The request URL (query credential included) echoed in two Location headers, and a
        // header named in the second of two Connection headers.
        res.setHeader('location', [req.url, req.url]);
        res.setHeader('connection', ['keep-alive', 'x-internal']);
        res.setHeader('x-internal', 'hop');
      }
      if (req.url === '/early') {
        // Answers at once, before reading the request body (a 401 or a 413 would).
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"early":');
        setTimeout(() => res.end('true}'), 600);
        req.resume();
        return;
      }
      if (req.url === '/upload') {
        req.resume();
        req.on('end', () => res.writeHead(200).end('{"ok":true}'));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    await new Promise<void>((done) => upstream.listen(0, '127.0.0.1', done));
    port = (upstream.address() as AddressInfo).port;
  });
  after(() => upstream.close());

  const credential: ProxyCredential = {
    connection_id: '00000000-0000-4000-8000-000000000001',
    provider_name: 'svc',
    strategy: { type: 'header', config: { header_name: 'X-Api-Key' } },
    credentials: { api_key: 'upstream-key' },
  };

  /**
   * A proxy to `http://<host>:<port>` (by default `svc.example`, whose name resolves to whatever
   * `answer` holds), loopback allowed unless `allowCidrs` says otherwise.
   */
  function proxyTo(
    answer: { address: string },
    { using = credential, timeoutMs = 5000, host = 'svc.example', allowCidrs = ['127.0.0.1/32'] } = {},
  ) {
    const lookups: string[] = [];
    const proxy = createProxy<null>({
      routes: async (name) =>
        name === 'svc' ? { baseUrl: new URL(`http://${host}:${port}`), providerName: 'svc' } : undefined,
      credentials: { token: async () => using, refresh: async () => using },
      allowCidrs,
      bodyLimit: 1024,
      timeoutMs,
      resolve: async (host) => {
        lookups.push(host);
        return [{ address: answer.address, family: 4 }];
      },
    });
    const call = async (path: string, body?: Readable) => {
      const result = await proxy.forward({
        caller: null,
        route: 'svc',
        path,
        search: '',
        publicBase: '/proxy/svc',
        method: body === undefined ? 'GET' : 'POST',
        headers: {
          'x-nexus-connection-id': credential.connection_id,
          ...(body === undefined ? {} : { 'transfer-encoding': 'chunked' }),
        },
        body,
      });
      const chunks: Buffer[] = [];
      for await (const chunk of result.body) chunks.push(chunk as Buffer);
      return { status: result.status, headers: result.headers, body: Buffer.concat(chunks).toString() };
    };
    return { proxy, call, lookups };
  }

  /** For `assert.rejects`: the broker's error `code`, with `status` and a message matching `message`. */
  const nexusError =
    (code: string, status: number, message?: RegExp) =>
    (error: unknown): true => {
      assert.ok(error instanceof NexusError);
      assert.equal(error.code, code);
      assert.equal(error.status, status);
      if (message !== undefined) assert.match(error.message, message);
      return true;
    };

  it('resolves and checks a host name once per connection, not on every call', async () => {
    seen.length = 0;
    const { proxy, call, lookups } = proxyTo({ address: '127.0.0.1' });
    try {
      for (let i = 0; i < 5; i++) {
        const answer = await call(`/a${i}`);
        assert.deepEqual([answer.status, answer.body], [200, '{"ok":true}']);
      }
      const connections = new Set(seen.map((s) => s.socket)).size;
      assert.ok(connections < 5, `the pool reused its connections (${connections} for 5 calls)`);
      assert.equal(lookups.length, connections, 'one lookup per connection opened');
      assert.ok(lookups.every((host) => host === 'svc.example'));
      assert.ok(seen.every((s) => s.key === 'upstream-key'));
    } finally {
      proxy.close();
    }
  });

  it('refuses a name that resolves to a forbidden address, and opens no connection', async () => {
    seen.length = 0;
    const { proxy, call } = proxyTo({ address: '10.1.2.3' });
    try {
      await assert.rejects(
        call('/x'),
        nexusError(
          'upstream_error',
          502,
          /svc\.example resolves to 10\.1\.2\.3, a private or special-purpose address/,
        ),
      );
      assert.deepEqual(seen, []);
    } finally {
      proxy.close();
    }
  });

  it('checks the name again for every new connection: a rebound name is refused', async () => {
    seen.length = 0;
    const answer = { address: '127.0.0.1' };
    const { proxy, call, lookups } = proxyTo(answer);
    try {
      // The upstream closes this connection after answering.
      assert.equal((await call('/close')).status, 200);
      answer.address = '169.254.169.254';
      await assert.rejects(call('/after'), nexusError('upstream_error', 502, /169\.254\.169\.254/));
      assert.equal(lookups.length, 2, 'the second connection looked the name up again');
      assert.deepEqual(
        seen.map((s) => s.path),
        ['/close'],
        'nothing reached the upstream after the name was rebound',
      );
    } finally {
      proxy.close();
    }
  });

  it('a repeated Location header is rewritten and cleaned of the credential like a single one', async () => {
    const secret = 'query-secret-123456';
    const { proxy, call } = proxyTo(
      { address: '127.0.0.1' },
      {
        using: {
          ...credential,
          strategy: { type: 'query_param', config: { param_name: 'api_key' } },
          credentials: { api_key: secret },
        },
      },
    );
    try {
      const answer = await call('/twice/items');
      assert.equal(
        answer.headers.location,
        '/proxy/svc/twice/items',
        'one location, the proxy path, no query',
      );
      assert.ok(!JSON.stringify(answer.headers).includes(secret), 'the credential is in no header');
      assert.equal(
        answer.headers['x-internal'],
        undefined,
        'a header named in a repeated Connection is dropped',
      );
    } finally {
      proxy.close();
    }
  });

  it('a caller that stops sending a streamed body gets upstream_timeout, as a silent upstream does', async () => {
    const { proxy, call } = proxyTo({ address: '127.0.0.1' }, { timeoutMs: 300 });
    try {
      const stalled = new Readable({ read() {} });
      stalled.push('first chunk, then nothing');
      await assert.rejects(call('/upload', stalled), nexusError('upstream_timeout', 504));
      // A body that is sent whole goes through.
      assert.equal((await call('/upload', Readable.from(['all', 'of', 'it']))).status, 200);
    } finally {
      proxy.close();
    }
  });

  it('an answer that starts before the upload ends is not cut by the upload deadline', async () => {
    const { proxy, call } = proxyTo({ address: '127.0.0.1' }, { timeoutMs: 300 });
    try {
      const slow = new Readable({ read() {} });
      slow.push('one chunk');
      // The caller finishes its upload only after the deadline, while the answer is streaming.
      setTimeout(() => slow.push(null), 500);
      const answer = await call('/early', slow);
      assert.deepEqual([answer.status, answer.body], [200, '{"early":true}']);
    } finally {
      proxy.close();
    }
  });

  it('checks an IP address in the URL on every call (no lookup sees it)', async () => {
    const { proxy, call, lookups } = proxyTo({ address: '127.0.0.1' }, { host: '127.0.0.1', allowCidrs: [] });
    seen.length = 0;
    try {
      await assert.rejects(call('/x'), nexusError('upstream_error', 502, /127\.0\.0\.1 is a private/));
      assert.deepEqual(lookups, []);
      assert.deepEqual(seen, []);
    } finally {
      proxy.close();
    }
  });
});
