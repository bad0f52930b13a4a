/**
 * A `query_param` credential never comes back in an answer header (security review of the proxy,
 * defect 2): APIs build pagination `Link` headers, and other headers, from the request URL, which
 * holds the credential the proxy put in its query. Through `/proxy`, against a real upstream.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { capture, startCapture } from './capture-helpers.ts';
import { createAgentWithToken, startBroker, type TestBroker } from './harness.ts';

const KEY = 'qk-SECRET value/0123456789';

describe('proxy answer headers', () => {
  let broker: TestBroker;
  let connection: string;
  let token: string;
  const upstream = createServer((req, res) => {
    // Pagination as many APIs write it: the request's own URL, page bumped.
    const next = new URL(req.url ?? '/', 'https://api.example.test');
    next.searchParams.set('page', '2');
    // The key as other encoders write it: RFC 3986 leaving '/' alone (Python's quote()), and
    // lower-case escapes. Review (2026-12-07): neither matched the three spellings scrubbed.
    const key = new URL(req.url ?? '/', 'http://x').searchParams.get('api_key') ?? '';
    const quoted = encodeURIComponent(key).replace(/%2F/g, '/');
    const lower = encodeURIComponent(key).replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase());
    res.writeHead(200, {
      'content-type': 'application/json',
      link: `<${next.href}>; rel="next"`,
      'x-request-url': req.url,
      'x-next-quoted': `https://api.example.test/api/items?page=3&api_key=${quoted}`,
      'x-next-lower': `<https://api.example.test/api/items?api_key=${lower}&page=4>`,
    });
    res.end('{"items":[]}');
  });

  before(async () => {
    await new Promise<void>((done) => upstream.listen(0, '127.0.0.1', done));
    const base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/api`;
    broker = await startBroker({ env: { NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32' } });
    const strategy = { type: 'query_param', config: { param_name: 'api_key', credential_field: 'api_key' } };
    const created = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: {
          name: 'paged',
          auth_type: 'query_param',
          api_base_url: base,
          params: { auth_strategy: strategy },
        },
      },
    });
    assert.equal(created.statusCode, 201, created.body);
    const flow = await startCapture(broker, 'paged', 'user-1');
    assert.equal((await capture(broker, flow.state, { api_key: KEY })).statusCode, 200);
    connection = flow.connection_id;
    token = (
      await createAgentWithToken(broker, 'agent-1', { allowed_providers: ['*'], allowed_workspaces: ['*'] })
    ).token;
  });
  after(async () => {
    await broker?.close();
    upstream.close();
  });

  it('a query_param credential in a pagination Link, or any header echoing the URL, is not handed back', async () => {
    const res = await broker.request({
      method: 'GET',
      url: '/proxy/paged/items?per_page=5',
      key: null,
      headers: { authorization: `Bearer ${token}`, 'x-nexus-connection-id': connection },
    });
    assert.equal(res.statusCode, 200, res.body);
    const headers = JSON.stringify(res.headers);
    for (const form of [KEY, encodeURIComponent(KEY), new URLSearchParams({ KEY }).toString().slice(4)])
      assert.ok(!headers.includes(form), `the credential (${form}) is in ${headers}`);
    // The rest of the link is intact: the caller can still follow it (through the proxy).
    assert.equal(res.headers.link, '<https://api.example.test/api/items?per_page=5&page=2>; rel="next"');
    assert.equal(res.headers['x-request-url'], '/api/items?per_page=5');
    // Whatever its encoding, a query pair whose value decodes to the credential goes whole.
    assert.equal(res.headers['x-next-quoted'], 'https://api.example.test/api/items?page=3');
    assert.equal(res.headers['x-next-lower'], '<https://api.example.test/api/items?page=4>');
  });
});
