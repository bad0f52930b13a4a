import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createSafeFetch, EgressError, isSpecialAddress } from './safe-fetch.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A real loopback HTTP server whose behaviour each test sets, recording what it received. */
async function startServer(): Promise<{
  server: Server;
  port: number;
  seen: IncomingMessage[];
  handle: (h: Handler) => void;
}> {
  let handler: Handler = (_req, res) => res.end('ok');
  const seen: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    seen.push(req);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    seen,
    handle: (h) => {
      handler = h;
    },
  };
}

const rejectsWith = async (promise: Promise<unknown>, reason: EgressError['reason']) => {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof EgressError, `expected EgressError, got ${String(error)}`);
    assert.equal(error.reason, reason, error.message);
    return true;
  });
};

describe('special-purpose addresses', () => {
  test('loopback, private, link-local, metadata and IPv4-embedding IPv6 forms are special', () => {
    for (const address of [
      '127.0.0.1',
      '127.255.255.254',
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '224.0.0.1',
      '255.255.255.255',
      '::',
      '::1',
      'fe80::1',
      'fc00::1',
      'fd12:3456::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '::ffff:a9fe:a9fe',
      '64:ff9b::7f00:1',
      '2002:7f00:1::',
      'ff02::1',
    ]) {
      assert.equal(isSpecialAddress(address), true, address);
    }
  });

  test('public addresses are not special', () => {
    for (const address of ['8.8.8.8', '1.1.1.1', '93.184.216.34', '2606:4700:4700::1111', '2a00:1450::1']) {
      assert.equal(isSpecialAddress(address), false, address);
    }
  });
});

describe('safe fetch', () => {
  let s: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    s = await startServer();
  });
  after(() => {
    s.server.closeAllConnections();
    s.server.close();
  });

  test('refuses a loopback URL unless the operator allows its range', async () => {
    s.seen.length = 0;
    const strict = createSafeFetch({ allowCidrs: [], timeoutMs: 2000 });
    await rejectsWith(strict(`http://127.0.0.1:${s.port}/`), 'address_not_allowed');
    assert.equal(s.seen.length, 0, 'no connection was made');

    s.handle((_req, res) => res.end('hello'));
    const allowing = createSafeFetch({ allowCidrs: ['127.0.0.1/32'], timeoutMs: 2000 });
    const answer = await allowing(`http://127.0.0.1:${s.port}/`);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.toString(), 'hello');
  });

  test('refuses integer and hexadecimal spellings of loopback and IPv6 loopback', async () => {
    const strict = createSafeFetch({ allowCidrs: [], timeoutMs: 2000 });
    await rejectsWith(strict(`http://2130706433:${s.port}/`), 'address_not_allowed');
    await rejectsWith(strict(`http://0x7f.1:${s.port}/`), 'address_not_allowed');
    await rejectsWith(strict(`http://[::1]:${s.port}/`), 'address_not_allowed');
    await rejectsWith(strict(`http://[::ffff:127.0.0.1]:${s.port}/`), 'address_not_allowed');
    await rejectsWith(strict('http://169.254.169.254/latest/meta-data/'), 'address_not_allowed');
  });

  test('checks every address a name resolves to, and refuses the name if any is private', async () => {
    s.seen.length = 0;
    const resolve = async (host: string) =>
      host === 'mixed.example'
        ? [
            { address: '93.184.216.34', family: 4 },
            { address: '10.0.0.7', family: 4 },
          ]
        : [{ address: '192.168.0.10', family: 4 }];
    const fetcher = createSafeFetch({ allowCidrs: ['127.0.0.1/32'], timeoutMs: 2000, resolve });
    await rejectsWith(fetcher('https://mixed.example/'), 'address_not_allowed');
    await rejectsWith(fetcher('https://intranet.example/'), 'address_not_allowed');
    assert.equal(s.seen.length, 0);
  });

  test('connects to the address it checked, not to a second lookup', async () => {
    s.seen.length = 0;
    let lookups = 0;
    const resolve = async () => {
      lookups++;
      // A rebinding resolver: the first answer is allowed, later ones point elsewhere.
      return [{ address: lookups === 1 ? '127.0.0.1' : '10.9.9.9', family: 4 }];
    };
    s.handle((req, res) => res.end(req.headers.host));
    const fetcher = createSafeFetch({ allowCidrs: ['127.0.0.1/32'], timeoutMs: 2000, resolve });
    const answer = await fetcher(`http://api.example:${s.port}/v1/me`);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.toString(), `api.example:${s.port}`, 'the Host header keeps the name');
    assert.equal(lookups, 1);
    assert.equal(s.seen.length, 1);
  });

  test('re-checks every redirect and refuses one that points inside the network', async () => {
    const fetcher = createSafeFetch({ allowCidrs: ['127.0.0.1/32'], timeoutMs: 2000 });
    for (const target of [
      'http://169.254.169.254/latest/meta-data/',
      `http://127.0.0.2:${s.port}/`,
      `http://[::1]:${s.port}/`,
      'http://10.0.0.1/',
    ]) {
      s.seen.length = 0;
      s.handle((_req, res) => {
        res.writeHead(302, { location: target });
        res.end();
      });
      await rejectsWith(fetcher(`http://127.0.0.1:${s.port}/start`), 'address_not_allowed');
      assert.equal(s.seen.length, 1, `only the first hop was requested (${target})`);
    }
  });

  test('keeps headers on a same-origin redirect and drops them on a cross-origin one', async () => {
    const resolve = async () => [{ address: '127.0.0.1', family: 4 }];
    const fetcher = createSafeFetch({ allowCidrs: ['127.0.0.1/32'], timeoutMs: 2000, resolve });
    s.handle((req, res) => {
      if (req.url === '/same') {
        res.writeHead(307, { location: '/landed' });
        res.end();
      } else if (req.url === '/cross') {
        res.writeHead(302, { location: `http://elsewhere.example:${s.port}/landed` });
        res.end();
      } else {
        res.end(req.headers.authorization ?? 'no credential');
      }
    });
    const headers = { authorization: 'Bearer secret-value' };
    const same = await fetcher(`http://127.0.0.1:${s.port}/same`, { headers });
    assert.equal(same.body.toString(), 'Bearer secret-value');
    assert.equal(same.url, `http://127.0.0.1:${s.port}/landed`);
    const cross = await fetcher(`http://127.0.0.1:${s.port}/cross`, { headers });
    assert.equal(cross.body.toString(), 'no credential');
  });

  test('stops after the redirect limit', async () => {
    s.handle((_req, res) => {
      res.writeHead(302, { location: '/again' });
      res.end();
    });
    const fetcher = createSafeFetch({ allowCidrs: ['127.0.0.1/32'], timeoutMs: 2000, maxRedirects: 2 });
    s.seen.length = 0;
    await rejectsWith(fetcher(`http://127.0.0.1:${s.port}/`), 'too_many_redirects');
    assert.equal(s.seen.length, 3);
  });

  test('gives up on a server that does not answer in time', async () => {
    s.handle(() => {
      /* never answers */
    });
    const fetcher = createSafeFetch({ allowCidrs: ['127.0.0.1/32'], timeoutMs: 200 });
    await rejectsWith(fetcher(`http://127.0.0.1:${s.port}/slow`), 'timeout');
  });

  test('reads at most maxResponseBytes of a body', async () => {
    s.handle((_req, res) => res.end('x'.repeat(100_000)));
    const fetcher = createSafeFetch({
      allowCidrs: ['127.0.0.1/32'],
      timeoutMs: 2000,
      maxResponseBytes: 1000,
    });
    const answer = await fetcher(`http://127.0.0.1:${s.port}/big`);
    assert.equal(answer.body.length, 1000);
    assert.equal(answer.truncated, true);
  });

  test('refuses other schemes, embedded credentials and non-URLs', async () => {
    const fetcher = createSafeFetch({ allowCidrs: ['127.0.0.1/32'], timeoutMs: 2000 });
    await rejectsWith(fetcher('file:///etc/passwd'), 'bad_url');
    await rejectsWith(fetcher(`http://user:pw@127.0.0.1:${s.port}/`), 'bad_url');
    await rejectsWith(fetcher('not a url'), 'bad_url');
  });

  test('reports a refused connection as a network failure', async () => {
    const closed = await startServer();
    const port = closed.port;
    await new Promise<void>((resolve) => closed.server.close(() => resolve()));
    const fetcher = createSafeFetch({ allowCidrs: ['127.0.0.1/32'], timeoutMs: 2000 });
    await rejectsWith(fetcher(`http://127.0.0.1:${port}/`), 'network');
  });
});
