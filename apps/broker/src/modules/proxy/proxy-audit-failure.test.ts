import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createProxy, type ProxyCallInfo, type ProxyCredential, type ProxyObserver } from './proxy.ts';

/**
 * The proxy's audit event is written once the upstream has answered (it records the status). When
 * that write fails (the database went away during the call), the caller must not be told to retry
 * a request the upstream has already carried out: it gets the upstream's answer, and the call is
 * reported as unrecorded. A failure before anything was sent is still the answer. The upstream is
 * a real local server; the observer stands in for the audit log.
 */
describe('proxy: an audit write that fails after the upstream answered', () => {
  let upstream: Server;
  let port = 0;
  const seen: string[] = [];
  before(async () => {
    upstream = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(201, { 'content-type': 'application/json' }).end('{"charged":true}');
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
  const databaseGone = Object.assign(new Error('Connection terminated unexpectedly'), { code: '57P01' });

  function proxyWith(observer: ProxyObserver<null>, known = true) {
    return createProxy<null>({
      routes: async () =>
        known ? { baseUrl: new URL(`http://127.0.0.1:${port}`), providerName: 'svc' } : undefined,
      credentials: { token: async () => credential, refresh: async () => credential },
      allowCidrs: ['127.0.0.1/32'],
      bodyLimit: 1024,
      timeoutMs: 5_000,
      observer,
    });
  }
  const call = (proxy: ReturnType<typeof proxyWith>) =>
    proxy.forward({
      caller: null,
      route: 'svc',
      path: '/charge',
      search: '',
      publicBase: '/proxy/svc',
      method: 'POST',
      headers: { 'x-nexus-connection-id': credential.connection_id },
      body: undefined,
    });

  it('answers with the upstream answer and reports the call as unrecorded', async () => {
    const unrecorded: ProxyCallInfo[] = [];
    const proxy = proxyWith({
      done: () => Promise.reject(databaseGone),
      unrecorded: (_caller, info, error) => {
        assert.equal(error, databaseGone);
        unrecorded.push(info);
      },
    });
    try {
      const before = seen.length;
      const res = await call(proxy);
      assert.equal(res.status, 201);
      let text = '';
      for await (const chunk of res.body) text += chunk;
      assert.equal(text, '{"charged":true}');
      assert.equal(seen.length - before, 1, 'the upstream carried the call out once');
      assert.equal(unrecorded.length, 1);
      assert.equal(unrecorded[0]!.status, 201);
      assert.equal(unrecorded[0]!.connectionId, credential.connection_id);
    } finally {
      await proxy.close();
    }
  });

  it('answers with the audit failure when nothing was sent upstream', async () => {
    let reported = 0;
    const proxy = proxyWith(
      {
        done: () => Promise.reject(databaseGone),
        unrecorded: () => {
          reported++;
        },
      },
      false,
    );
    try {
      const before = seen.length;
      await assert.rejects(call(proxy), (error) => error === databaseGone);
      assert.equal(seen.length, before);
      assert.equal(reported, 0);
    } finally {
      await proxy.close();
    }
  });
});
