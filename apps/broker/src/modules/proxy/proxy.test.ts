import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { NexusError } from '../../errors/nexus-error.ts';
import { createProxy, type ProxyCallInfo, type ProxyCredential, type ProxyObserver } from './proxy.ts';

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
  /** The never-ending answers whose connection has closed, by path. */
  const closed: string[] = [];
  /** Resolves when `n` never-ending answers have closed, or fails after `ms`. */
  const closedWithin = async (n: number, ms: number) => {
    const until = Date.now() + ms;
    while (closed.length < n) {
      if (Date.now() > until) throw new Error(`${closed.length} of ${n} answers released after ${ms} ms`);
      await new Promise((done) => setTimeout(done, 10));
    }
  };

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
      if (req.url?.startsWith('/link')) {
        // Pagination as APIs build it, from the request URL (the query credential included), and
        // the credential echoed decoded in a header of its own.
        const next = new URL(req.url, 'https://api.example.test');
        next.searchParams.set('page', '2');
        res.writeHead(200, {
          link: [`<${next.href}>; rel="next"`, `<${req.url}>; rel="self"`],
          'x-echo': `key=${new URL(req.url, 'http://x').searchParams.get('api_key')}`,
        });
        res.end('{}');
        return;
      }
      if (req.url === '/hold' || req.url === '/endless') {
        // An answer that never ends: one chunk (`/hold`), or as much as the reader takes (`/endless`).
        res.once('close', () => closed.push(req.url ?? ''));
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(req.url === '/hold' ? 1 : 64 * 1024, 7);
        const more = () => {
          while (!res.destroyed && res.write(chunk) && req.url === '/endless');
        };
        res.on('drain', more);
        more();
        return;
      }
      if (req.url === '/quiet') {
        // An event stream: one event, a long silence, another.
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: one\n\n');
        setTimeout(() => res.end('data: two\n\n'), 700);
        return;
      }
      if (req.url === '/upload') {
        req.resume();
        req.on('end', () => res.writeHead(200).end('{"ok":true}'));
        return;
      }
      if (req.url === '/charge') {
        // A call with an effect (a payment, say): carried out once it has arrived.
        res.writeHead(201, { 'content-type': 'application/json' }).end('{"charged":true}');
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
    {
      using = credential,
      timeoutMs = 5000,
      host = 'svc.example',
      allowCidrs = ['127.0.0.1/32'],
      observer = undefined as ProxyObserver<null> | undefined,
    } = {},
  ) {
    const lookups: string[] = [];
    const proxy = createProxy<null>({
      routes: async (name) =>
        name === 'svc' ? { baseUrl: new URL(`http://${host}:${port}`), providerName: 'svc' } : undefined,
      credentials: { token: async () => using, refresh: async () => using },
      allowCidrs,
      bodyLimit: 1024,
      timeoutMs,
      ...(observer === undefined ? {} : { observer }),
      resolve: async (host) => {
        lookups.push(host);
        return [{ address: answer.address, family: 4 }];
      },
    });
    /** The answer, its body unread. */
    const open = (path: string, body?: Readable) =>
      proxy.forward({
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
    const call = async (path: string, body?: Readable) => {
      const result = await open(path, body);
      const chunks: Buffer[] = [];
      for await (const chunk of result.body) chunks.push(chunk as Buffer);
      return { status: result.status, headers: result.headers, body: Buffer.concat(chunks).toString() };
    };
    return { proxy, open, call, lookups };
  }

  /** A proxy to 127.0.0.1 whose credential goes in the query (`api_key`), with `secret` as the key. */
  const proxyWithQueryKey = (secret: string) =>
    proxyTo(
      { address: '127.0.0.1' },
      {
        using: {
          ...credential,
          strategy: { type: 'query_param', config: { param_name: 'api_key' } },
          credentials: { api_key: secret },
        },
      },
    );

  /**
   * For `assert.rejects`: the broker's error `code`, with `status` and its logged `detail` matching
   * `detail`; the caller's message never names the address (review, 2026-12-07).
   */
  const nexusError =
    (code: string, status: number, detail?: RegExp) =>
    (error: unknown): true => {
      assert.ok(error instanceof NexusError);
      assert.equal(error.code, code);
      assert.equal(error.status, status);
      if (detail !== undefined) {
        assert.match(error.detail ?? '', detail);
        assert.doesNotMatch(error.message, detail);
      }
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
    const { proxy, call } = proxyWithQueryKey(secret);
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

  it('a call waiting for a pooled connection gets upstream_timeout after the deadline, not never', {
    timeout: 10_000,
  }, async () => {
    // Not too short a deadline: opening 256 connections takes its time on a busy machine.
    const { proxy, open, call } = proxyTo({ address: '127.0.0.1' }, { timeoutMs: 1_500 });
    const held: Readable[] = [];
    try {
      // Every one of the origin's 256 connections busy with an answer that is still streaming.
      for (const answer of await Promise.all(Array.from({ length: 256 }, () => open('/hold'))))
        held.push(answer.body);
      const started = performance.now();
      await assert.rejects(call('/x'), nexusError('upstream_timeout', 504));
      const waited = performance.now() - started;
      assert.ok(waited < 4_000, `answered after ${Math.round(waited)} ms`);
      for (const body of held) body.destroy();
      assert.equal((await call('/x')).status, 200, 'the pool serves again once the answers are released');
    } finally {
      for (const body of held) body.destroy();
      proxy.close();
    }
  });

  it('a long upload is not cut while it moves, even past the deadline', { timeout: 10_000 }, async () => {
    const { proxy, call } = proxyTo({ address: '127.0.0.1' }, { timeoutMs: 600 });
    try {
      let sent = 0;
      const slow = new Readable({
        read() {
          if (sent === 12) return void this.push(null);
          sent += 1;
          setTimeout(() => this.push('chunk'), 100); // 1.2 s in all, twice the deadline
        },
      });
      assert.equal((await call('/upload', slow)).status, 200);
    } finally {
      proxy.close();
    }
  });

  it('an answer its reader stopped taking is released after the deadline; a quiet one is not', {
    timeout: 10_000,
  }, async () => {
    const { proxy, open } = proxyTo({ address: '127.0.0.1' }, { timeoutMs: 300 });
    try {
      closed.length = 0;
      const unread = await open('/endless');
      unread.body.on('error', () => {});
      // A destination that takes one chunk and then never drains (a reader that went away).
      unread.body.pipe(new Writable({ highWaterMark: 1, write() {} }));
      await closedWithin(1, 2_000);

      // An event stream silent for longer than the deadline, read by a pipe, arrives whole.
      const quiet = await open('/quiet');
      const chunks: Buffer[] = [];
      await new Promise<void>((done, fail) => {
        quiet.body.on('error', fail);
        quiet.body.pipe(
          new Writable({
            write(chunk: Buffer, _encoding, next) {
              chunks.push(chunk);
              next();
            },
          }).on('finish', done),
        );
      });
      assert.equal(Buffer.concat(chunks).toString(), 'data: one\n\ndata: two\n\n');
    } finally {
      proxy.close();
    }
  });

  it('a query credential echoed in any answer header (pagination Link, say) is removed in every form', async () => {
    // Characters that URLSearchParams, encodeURIComponent and plain text each write differently.
    const secret = 'q secret/+&=~9';
    const { proxy, call } = proxyWithQueryKey(secret);
    try {
      const answer = await call('/link');
      const text = JSON.stringify(answer.headers);
      for (const form of [
        secret,
        encodeURIComponent(secret),
        new URLSearchParams({ secret }).toString().slice(7),
      ])
        assert.ok(!text.includes(form), `${form} is in ${text}`);
      assert.deepEqual(answer.headers.link, [
        '<https://api.example.test/link?page=2>; rel="next"',
        '</link>; rel="self"',
      ]);
      assert.equal(answer.headers['x-echo'], 'key=');
    } finally {
      proxy.close();
    }
  });
  // The audit event is written once the upstream has answered (it records the status). When that
  // write fails (the database went away during the call), the caller must not be told to retry a
  // call the upstream has already carried out: it gets the upstream's answer, and the call is
  // reported as unrecorded. A failure before anything was sent is still the answer.
  const databaseGone = Object.assign(new Error('Connection terminated unexpectedly'), { code: '57P01' });

  it('an audit write that fails after the upstream answered leaves the answer, and reports the call', async () => {
    const unrecorded: ProxyCallInfo[] = [];
    const { proxy, call } = proxyTo(
      { address: '127.0.0.1' },
      {
        observer: {
          done: () => Promise.reject(databaseGone),
          unrecorded: (_caller, info, error) => {
            assert.equal(error, databaseGone);
            unrecorded.push(info);
          },
        },
      },
    );
    try {
      const before = seen.length;
      const res = await call('/charge');
      assert.equal(res.status, 201);
      assert.equal(res.body, '{"charged":true}');
      assert.equal(seen.length - before, 1, 'the upstream carried the call out once');
      assert.equal(unrecorded.length, 1);
      assert.equal(unrecorded[0]!.status, 201);
      assert.equal(unrecorded[0]!.connectionId, credential.connection_id);
    } finally {
      await proxy.close();
    }
  });

  it('an audit write that fails when nothing was sent upstream is the answer', async () => {
    let reported = 0;
    const { proxy } = proxyTo(
      { address: '127.0.0.1' },
      {
        observer: {
          done: () => Promise.reject(databaseGone),
          unrecorded: () => {
            reported++;
          },
        },
      },
    );
    try {
      const before = seen.length;
      const unknownRoute = proxy.forward({
        caller: null,
        route: 'not-a-route',
        path: '/charge',
        search: '',
        publicBase: '/proxy/not-a-route',
        method: 'POST',
        headers: { 'x-nexus-connection-id': credential.connection_id },
        body: undefined,
      });
      await assert.rejects(unknownRoute, (error) => error === databaseGone);
      assert.equal(seen.length, before);
      assert.equal(reported, 0);
    } finally {
      await proxy.close();
    }
  });
});
