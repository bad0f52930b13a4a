/**
 * The bridge against the testbed: a real broker, a real OpenID provider and an upstream API that
 * checks the credential each strategy must have applied (HMAC and SigV4 recomputed server-side).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  AttentionRequiredError,
  createBridgeFetch,
  NexusClient,
  type NexusClientOptions,
  type RetryEvent,
} from '../src/index.ts';
import { STRATEGIES, startTestbed, type Testbed } from './testbed.ts';

let tb: Testbed;

before(async () => {
  tb = await startTestbed();
});
after(async () => {
  await tb?.stop();
});

/** An agent client whose broker calls are counted by `METHOD path-prefix`. */
function agentClient(extra: Partial<NexusClientOptions> = {}) {
  const calls: string[] = [];
  const client = new NexusClient({
    baseUrl: tb.info.broker_url,
    clientId: tb.info.agent.client_id,
    clientSecret: tb.info.agent.client_secret,
    env: {},
    fetch: (input, init) => {
      const url = new URL(input instanceof Request ? input.url : input);
      calls.push(`${init?.method ?? 'GET'} ${url.pathname}`);
      return fetch(input, init);
    },
    ...extra,
  });
  const count = (prefix: string) => calls.filter((c) => c.startsWith(prefix)).length;
  return { client, calls, count };
}

const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

describe('every strategy, verified by the upstream', () => {
  for (const strategy of STRATEGIES) {
    test(`${strategy}: GET and POST with a body are accepted; without the bridge refused`, async () => {
      const { client } = agentClient();
      const bridge = createBridgeFetch({ client, connectionId: tb.info.connections[strategy] });
      const before = (await tb.stats()).upstream[strategy];

      const get = await bridge(`${tb.info.upstream_url}/${strategy}/items?b=2&a=1&space=a%20b`);
      assert.equal(get.status, 200, await get.clone().text());
      assert.deepEqual(
        { ...((await get.json()) as object), body_sha256: undefined },
        { ok: true, strategy, method: 'GET', path: `/${strategy}/items`, body_sha256: undefined },
      );

      // Bytes that are not valid UTF-8: HMAC and SigV4 must cover exactly what is sent.
      const body = new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0xff, 0x00, 0xc3, 0x28, 0x7d]);
      const post = await bridge(new URL(`${tb.info.upstream_url}/${strategy}/items/42`), {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'x-custom': 'kept' },
        body,
      });
      assert.equal(post.status, 200, await post.clone().text());
      const answer = (await post.json()) as { method: string; path: string; body_sha256: string };
      assert.equal(answer.method, 'POST');
      assert.equal(answer.path, `/${strategy}/items/42`);
      assert.equal(answer.body_sha256, sha256(body));

      const plain = await fetch(`${tb.info.upstream_url}/${strategy}/items`);
      assert.equal(plain.status, 401, 'the upstream really checks');
      await plain.body?.cancel();

      const afterStats = (await tb.stats()).upstream[strategy];
      assert.equal(afterStats.accepted - before.accepted, 2);
      assert.equal(afterStats.rejected - before.rejected, 1);
    });
  }

  test('a Request object with a string body, and a workspace + provider target', async () => {
    const { client, count } = agentClient();
    const bridge = createBridgeFetch({
      client,
      workspaceId: tb.info.workspace_id,
      providerName: tb.info.providers.hmac_payload,
    });
    const text = '{"message":"héllo"}';
    const request = new Request(`${tb.info.upstream_url}/hmac_payload/echo`, { method: 'PUT', body: text });
    const response = await bridge(request);
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(((await response.json()) as { body_sha256: string }).body_sha256, sha256(text));
    assert.equal(count('GET /v1/resolve'), 1);
    assert.ok(bridge.connectionId, 'the resolved connection is remembered');

    await bridge(`${tb.info.upstream_url}/hmac_payload/again`, { method: 'POST', body: 'x' });
    assert.equal(count('GET /v1/resolve'), 1, 'the credential is cached');
  });
});

describe('credential lifetime', () => {
  test('expiry-driven refresh: 20 concurrent requests past expires_at - skew cause ONE refresh', async () => {
    const connectionId = await tb.connect('oauth2');
    let offset = 0;
    const now = () => Date.now() + offset;
    const { client, count } = agentClient({ now });
    const skewMs = 60_000;
    const bridge = createBridgeFetch({ client, connectionId }, { now, skewMs });

    const first = await bridge(`${tb.info.upstream_url}/oauth2/first`);
    assert.equal(first.status, 200);
    const initial = await bridge.credential();
    assert.ok(initial.expires_at, 'the OAuth connection has an expiry');
    const idpBefore = (await tb.stats()).idp.refresh_token;

    // Still inside the validity window: no broker call at all.
    offset = Date.parse(initial.expires_at) - skewMs - Date.now() - 5_000;
    const calm = await Promise.all(
      Array.from({ length: 5 }, () => bridge(`${tb.info.upstream_url}/oauth2/calm`)),
    );
    assert.ok(calm.every((r) => r.status === 200));
    assert.equal(count('POST /v1/refresh'), 0);
    assert.equal(count('GET /v1/token'), 1);

    // Past expires_at - skew: everyone waits for the same single refresh.
    offset = Date.parse(initial.expires_at) - skewMs - Date.now() + 1_000;
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => bridge(`${tb.info.upstream_url}/oauth2/burst/${i}`)),
    );
    assert.deepEqual(
      responses.map((r) => r.status),
      Array.from({ length: 20 }, () => 200),
    );
    assert.equal(count('POST /v1/refresh'), 1, 'the SDK asked the broker once');
    assert.equal(
      (await tb.stats()).idp.refresh_token - idpBefore,
      1,
      'the IdP saw exactly one refresh grant',
    );
    const refreshed = await bridge.credential();
    assert.notEqual(refreshed.credentials.access_token, initial.credentials.access_token);
  });

  test('401 from the upstream: exactly one forced refresh and one retry (oauth2)', async () => {
    const connectionId = await tb.connect('oauth2');
    const { client, count } = agentClient();
    const bridge = createBridgeFetch({ client, connectionId });
    assert.equal((await bridge(`${tb.info.upstream_url}/oauth2/warm`)).status, 200);
    const before = await tb.stats();

    await tb.control('POST', '/upstream/reject-next', { strategy: 'oauth2', count: 1 });
    const response = await bridge(`${tb.info.upstream_url}/oauth2/retry`, {
      method: 'POST',
      body: 'replayed body',
    });
    assert.equal(response.status, 200);
    assert.equal(((await response.json()) as { body_sha256: string }).body_sha256, sha256('replayed body'));
    const afterStats = await tb.stats();
    assert.equal(afterStats.upstream.oauth2.rejected - before.upstream.oauth2.rejected, 1);
    assert.equal(afterStats.upstream.oauth2.accepted - before.upstream.oauth2.accepted, 1);
    assert.equal(count('POST /v1/refresh'), 1);
    assert.equal(afterStats.idp.refresh_token - before.idp.refresh_token, 1);

    // Two 401s in a row: still only one retry, and the caller sees the second 401.
    await tb.control('POST', '/upstream/reject-next', { strategy: 'oauth2', count: 2 });
    const twice = await bridge(`${tb.info.upstream_url}/oauth2/twice`);
    assert.equal(twice.status, 401);
    const last = await tb.stats();
    assert.equal(last.upstream.oauth2.rejected - afterStats.upstream.oauth2.rejected, 2);
    assert.equal(count('POST /v1/refresh'), 2);
  });

  test('401 on a static credential (hmac_payload): the credential is read again and the request replayed', async () => {
    const { client, count } = agentClient();
    const bridge = createBridgeFetch({ client, connectionId: tb.info.connections.hmac_payload });
    await tb.control('POST', '/upstream/reject-next', { strategy: 'hmac_payload', count: 1 });
    // A streamed body, which fetch alone could not send twice: the bridge buffered it.
    const chunks = ['streamed ', 'body ', 'in parts'];
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = chunks.shift();
        if (next === undefined) controller.close();
        else controller.enqueue(new TextEncoder().encode(next));
      },
    });
    const response = await bridge(`${tb.info.upstream_url}/hmac_payload/retry`, {
      method: 'POST',
      body: stream,
      duplex: 'half',
    } as RequestInit);
    assert.equal(response.status, 200);
    assert.equal(
      ((await response.json()) as { body_sha256: string }).body_sha256,
      sha256('streamed body in parts'),
    );
    assert.equal(count('POST /v1/refresh'), 1, 'asked for a refresh');
    assert.equal(count('GET /v1/token'), 2, 'then, as static credentials cannot refresh, read them again');
  });

  test('attention_required: a revoked grant surfaces as AttentionRequiredError telling to reconnect', async () => {
    const connectionId = await tb.connect('oauth2');
    const { client } = agentClient();
    const bridge = createBridgeFetch({ client, connectionId });
    assert.equal((await bridge(`${tb.info.upstream_url}/oauth2/ok`)).status, 200);

    await tb.control('POST', '/idp/revoke', { connection_id: connectionId });
    const error = await bridge(`${tb.info.upstream_url}/oauth2/after-revoke`).catch((e: unknown) => e);
    assert.ok(
      error instanceof AttentionRequiredError,
      `expected AttentionRequiredError, got ${String(error)}`,
    );
    assert.equal(error.status, 409);
    assert.equal(error.code, 'attention_required');
    assert.equal(error.connectionId, connectionId);
    assert.match(error.message, /user must reconnect/i);
    assert.ok(error.requestId, 'carries the broker request id');

    assert.equal((await client.checkConnection(connectionId)).status, 'attention_required');
    await assert.rejects(client.getToken(connectionId), AttentionRequiredError);
    await assert.rejects(client.waitForActive(connectionId), AttentionRequiredError);
  });

  test('workspace + provider: after attention_required and a reconnect, the new connection is used', async () => {
    const workspaceId = `sdk-ts-reconnect-${Date.now()}`;
    const firstId = await tb.connect('oauth2', workspaceId);
    const { client } = agentClient();
    const bridge = createBridgeFetch({ client, workspaceId, providerName: tb.info.providers.oauth2 });
    assert.equal((await bridge(`${tb.info.upstream_url}/oauth2/a`)).status, 200);
    assert.equal(bridge.connectionId, firstId);

    await tb.control('POST', '/idp/revoke', { connection_id: firstId });
    await assert.rejects(bridge(`${tb.info.upstream_url}/oauth2/b`), AttentionRequiredError);

    const secondId = await tb.connect('oauth2', workspaceId); // the user reconnected
    assert.equal((await bridge(`${tb.info.upstream_url}/oauth2/c`)).status, 200);
    assert.equal(bridge.connectionId, secondId);
  });

  test('broker down, then back: the bridge backs off and then succeeds', async () => {
    const events: RetryEvent[] = [];
    let firstRetry: () => void = () => undefined;
    const retried = new Promise<void>((done) => {
      firstRetry = done;
    });
    const { client } = agentClient({
      onRetry: (e) => {
        events.push(e);
        firstRetry();
      },
    });
    await client.agentLogin();
    const brokerRetry = { maxRetries: 10, baseDelayMs: 200, maxDelayMs: 2000 };
    const bridge = createBridgeFetch({ client, connectionId: tb.info.connections.header }, { brokerRetry });

    await tb.control('POST', '/broker/stop');
    const pending = bridge(`${tb.info.upstream_url}/header/while-down`);
    await retried; // the bridge is backing off against a closed port
    await tb.control('POST', '/broker/start');
    const response = await pending;
    assert.equal(response.status, 200);

    assert.ok(events.length >= 1);
    assert.equal((await tb.stats()).broker.starts >= 2, true, 'the broker really restarted');
    assert.ok(events.every((e) => e.reason === 'ECONNREFUSED' && e.path.startsWith('/v1/token/')));
    // Exponential backoff with jitter: retry n waits between half and all of min(max, base * 2^(n-1)).
    for (const e of events) {
      const cap = Math.min(brokerRetry.maxDelayMs, brokerRetry.baseDelayMs * 2 ** (e.attempt - 1));
      assert.ok(e.delayMs >= cap / 2 && e.delayMs <= cap, `retry ${e.attempt} waited ${e.delayMs} ms`);
    }
  });
});
