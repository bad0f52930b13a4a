/**
 * Connection events and webhooks (issue #4, "Events and webhooks"): the admin API with every
 * validation error, the secret shown once, signed deliveries to a real HTTP receiver on loopback
 * that verifies them as docs/operations.md tells receivers to, the event filter, retries with
 * backoff, giving up, redelivery, the private-address guard, and exactly-once delivery by two
 * workers sharing one database.
 */
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { buildContainer, type Container } from '../src/container.ts';
import { createDeliveriesStore } from '../src/modules/events/deliveries.store.ts';
import { BASE_DELAY_MS, MAX_ATTEMPTS, MAX_DELAY_MS } from '../src/modules/events/webhook-delivery.ts';
import { createWebhooksService, MAX_WEBHOOKS } from '../src/modules/events/webhooks.service.ts';
import { createWebhooksStore } from '../src/modules/events/webhooks.store.ts';
import { checkWebhookUrl } from '../src/modules/events/webhooks.validate.ts';
import { ciphertextKeyUsage, ENCRYPTED_COLUMNS } from '../src/modules/keys/rewrap.ts';
import { json, startBroker, type TestBroker } from './harness.ts';

// ---------------------------------------------------------------------------------------------
// A receiver, verifying exactly as docs/operations.md ("Verifying a delivery") says.

/** Returns why a delivery must be rejected, or undefined when it is authentic and fresh. */
function verifyDelivery(
  secret: string,
  header: string | undefined,
  rawBody: string,
  nowSeconds: number,
): string | undefined {
  if (header === undefined) return 'no Nexus-Signature header';
  let t: number | undefined;
  const v1: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't' && /^\d+$/.test(value)) t = Number(value);
    if (key === 'v1') v1.push(value);
  }
  if (t === undefined) return 'no timestamp';
  if (Math.abs(nowSeconds - t) > 300) return 'timestamp outside the 5-minute window (replay?)';
  const expected = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest();
  const ok = v1.some((sig) => {
    const given = Buffer.from(sig, 'hex');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  return ok ? undefined : 'signature mismatch';
}

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}
type Answer = { status: number; headers?: Record<string, string>; delayMs?: number };

async function startReceiver(host = '127.0.0.1') {
  const received: Received[] = [];
  const state = { respond: (_r: Received): Answer => ({ status: 200 }) };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const r = { path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      received.push(r);
      const answer = state.respond(r);
      if (answer.delayMs) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
      res.writeHead(answer.status, answer.headers).end('thanks');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    received,
    state,
    url: (path: string) => `http://${host}:${port}${path}`,
    on: (path: string) => received.filter((r) => r.path === path),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
type Receiver = Awaited<ReturnType<typeof startReceiver>>;

// ---------------------------------------------------------------------------------------------

type Problem = { path: string; message: string };
type WebhookView = {
  id: string;
  url: string;
  description: string;
  events: string[];
  active: boolean;
  created_at: string;
  updated_at: string;
  secret?: string;
};
type DeliveryView = {
  id: string;
  webhook_id: string;
  event_id: string;
  event_type: string;
  status: string;
  attempts: number;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  delivered_at: string | null;
};
type EventView = {
  id: string;
  type: string;
  connection_id: string;
  workspace_id: string;
  provider_id: string;
  details: Record<string, unknown>;
  created_at: string;
};

function assertProblem(
  res: LightMyRequestResponse,
  status: number,
  error: string,
  path?: string | RegExp,
  message?: RegExp,
): void {
  assert.equal(res.statusCode, status, res.body);
  const body = json<{ error: string; message: string; details?: Problem[] }>(res);
  assert.equal(body.error, error, res.body);
  if (path === undefined) return;
  assert.ok(Array.isArray(body.details), `details missing: ${res.body}`);
  assert.ok(
    body.details.some(
      (d) =>
        (typeof path === 'string' ? d.path === path : path.test(d.path)) &&
        (message === undefined || message.test(d.message)),
    ),
    `no problem at ${path} ${message ?? ''} in ${res.body}`,
  );
}

const START = Date.UTC(2030, 0, 1);

describe('webhook administration', () => {
  let broker: TestBroker;
  let receiver: Receiver;
  const responses: string[] = [];
  /** Every response body is kept, to scan for secrets at the end. */
  const call = async (options: Parameters<TestBroker['request']>[0]) => {
    const res = await broker.request(options);
    responses.push(res.body);
    return res;
  };
  const snapshot = async () => ({
    list: (await broker.request({ method: 'GET', url: '/admin/v1/webhooks' })).body,
    rows: await broker.container.db.kysely.selectFrom('webhooks').selectAll().execute(),
    audit: json<{ events: { seq: number }[] }>(await broker.request({ method: 'GET', url: '/audit?limit=1' }))
      .events[0]?.seq,
  });
  /** Sends a request that must be refused, and checks that it changed nothing. */
  async function refused(
    request: Parameters<TestBroker['request']>[0],
    status: number,
    error: string,
    path?: string | RegExp,
    message?: RegExp,
  ): Promise<void> {
    const before = await snapshot();
    const res = await call(request);
    assertProblem(res, status, error, path, message);
    assert.deepEqual(
      await snapshot(),
      before,
      `${request.method} ${request.url}: the refusal changed something`,
    );
  }

  before(async () => {
    receiver = await startReceiver();
    broker = await startBroker({ env: { NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32' } });
  });
  after(async () => {
    await broker.close();
    await receiver.close();
  });

  let hook: WebhookView & { secret: string };
  const secretsShown: string[] = [];

  it('creates a webhook and returns a generated secret once', async () => {
    const res = await broker.request({
      method: 'POST',
      url: '/admin/v1/webhooks',
      payload: {
        url: receiver.url('/hooks/tok_pathsecret123456'),
        description: 'ops pager',
        events: ['connection.revoked', 'connection.expired', 'connection.revoked'],
      },
    });
    assert.equal(res.statusCode, 201, res.body);
    hook = json(res);
    assert.match(hook.secret, /^whsec_[A-Za-z0-9_-]{43}$/);
    secretsShown.push(hook.secret);
    assert.equal(hook.url, receiver.url('/hooks/tok_pathsecret123456'));
    assert.equal(hook.description, 'ops pager');
    assert.deepEqual(hook.events, ['connection.revoked', 'connection.expired'], 'duplicates removed');
    assert.equal(hook.active, true);
    // Stored encrypted, bound to its row.
    const row = await broker.container.db.kysely
      .selectFrom('webhooks')
      .selectAll()
      .where('id', '=', hook.id)
      .executeTakeFirstOrThrow();
    assert.ok(row.secret instanceof Uint8Array);
    assert.ok(!Buffer.from(row.secret).toString('latin1').includes(hook.secret));
  });

  it('accepts a supplied secret, defaults to every event type, and can start disabled', async () => {
    const supplied = `my-own-secret-${'x'.repeat(24)}`;
    const res = await call({
      method: 'POST',
      url: '/admin/v1/webhooks',
      payload: { url: 'https://hooks.example.com/nexus', secret: supplied, active: false },
    });
    assert.equal(res.statusCode, 201, res.body);
    const body = json<WebhookView>(res);
    assert.equal(body.secret, supplied);
    secretsShown.push(supplied);
    responses.pop(); // the create response is the one place the secret may appear
    assert.deepEqual(body.events, []);
    assert.equal(body.active, false);
    assert.equal(body.description, '');
  });

  it('lists and gets webhooks without their secrets', async () => {
    const list = json<WebhookView[]>(await call({ method: 'GET', url: '/admin/v1/webhooks' }));
    assert.equal(list.length, 2);
    assert.ok(list.every((w) => !('secret' in w)));
    const one = json<WebhookView>(await call({ method: 'GET', url: `/admin/v1/webhooks/${hook.id}` }));
    const { secret: _, ...shown } = hook;
    assert.deepEqual(one, shown);
  });

  it('refuses every invalid create, creating nothing', async () => {
    const post = (payload: unknown) => ({
      method: 'POST' as const,
      url: '/admin/v1/webhooks',
      payload: payload as object,
    });
    const ok = 'https://hooks.example.com/x';
    await refused(post({}), 400, 'invalid_request', 'body.url');
    await refused(post({ url: '' }), 400, 'invalid_request', 'body.url');
    await refused(post({ url: 42 }), 400, 'invalid_request', 'body.url');
    await refused(
      post({ url: `https://hooks.example.com/${'a'.repeat(2030)}` }),
      400,
      'invalid_request',
      'body.url',
    );
    await refused(post({ url: 'not a url' }), 400, 'invalid_webhook', 'url', /absolute/);
    await refused(post({ url: '/relative/path' }), 400, 'invalid_webhook', 'url', /absolute/);
    await refused(post({ url: 'ftp://hooks.example.com/x' }), 400, 'invalid_webhook', 'url', /https/);
    await refused(post({ url: 'http://hooks.example.com/x' }), 400, 'invalid_webhook', 'url', /https/);
    await refused(
      post({ url: 'https://user:pw@hooks.example.com/x' }),
      400,
      'invalid_webhook',
      'url',
      /credentials/,
    );
    await refused(
      post({ url: 'https://token@hooks.example.com/x' }),
      400,
      'invalid_webhook',
      'url',
      /credentials/,
    );
    await refused(
      post({ url: 'https://hooks.example.com/x#frag' }),
      400,
      'invalid_webhook',
      'url',
      /fragment/,
    );
    await refused(post({ url: ok, extra: 1 }), 400, 'invalid_request', 'body.extra', /unknown field/);
    await refused(
      post({ url: ok, description: 'd'.repeat(501) }),
      400,
      'invalid_request',
      'body.description',
    );
    await refused(post({ url: ok, events: ['connection.nope'] }), 400, 'invalid_request', /^body\.events/);
    await refused(post({ url: ok, events: 'connection.active' }), 400, 'invalid_request', 'body.events');
    await refused(
      post({ url: ok, events: Array(13).fill('connection.active') }),
      400,
      'invalid_request',
      'body.events',
    );
    await refused(post({ url: ok, active: 'yes' }), 400, 'invalid_request', 'body.active');
    await refused(post({ url: ok, secret: 'short-secret' }), 400, 'invalid_request', 'body.secret');
    await refused(
      post({ url: ok, secret: `with spaces ${'x'.repeat(40)}` }),
      400,
      'invalid_request',
      'body.secret',
    );
    await refused(post({ url: ok, secret: 'x'.repeat(257) }), 400, 'invalid_request', 'body.secret');
    await refused(
      { method: 'POST', url: '/admin/v1/webhooks', headers: { 'content-type': 'text/plain' }, payload: ok },
      415,
      'unsupported_media_type',
    );
    await refused({ ...post({ url: ok }), key: null }, 401, 'unauthorized');
  });

  it('checks webhook URLs like provider URLs: http only for loopback, and never in production', () => {
    assert.deepEqual(checkWebhookUrl('http://localhost:9000/x', true), []);
    assert.deepEqual(checkWebhookUrl('http://127.0.0.1:9000/x', true), []);
    assert.deepEqual(checkWebhookUrl('http://[::1]:9000/x', true), []);
    assert.match(checkWebhookUrl('http://localhost:9000/x', false)[0]!.message, /^must use https$/);
    assert.match(checkWebhookUrl('http://10.0.0.1/x', true)[0]!.message, /https/);
    assert.deepEqual(
      checkWebhookUrl('https://10.0.0.1/x', false),
      [],
      'private targets are the egress guard’s to refuse',
    );
  });

  it('refuses every invalid update and unknown ids, changing nothing', async () => {
    const patch = (payload: unknown, id = hook.id) => ({
      method: 'PATCH' as const,
      url: `/admin/v1/webhooks/${id}`,
      payload: payload as object,
    });
    await refused(patch({ url: 'http://hooks.example.com/x' }), 400, 'invalid_webhook', 'url', /https/);
    await refused(
      patch({ url: 'https://a:b@hooks.example.com/x' }),
      400,
      'invalid_webhook',
      'url',
      /credentials/,
    );
    await refused(
      patch({ rotate_secret: true, secret: 'y'.repeat(40) }),
      400,
      'invalid_webhook',
      'rotate_secret',
      /not both/,
    );
    await refused(patch({ name: 'x' }), 400, 'invalid_request', 'body.name', /unknown field/);
    await refused(patch({ events: ['connection.bogus'] }), 400, 'invalid_request', /^body\.events/);
    await refused(patch({ active: 1 }), 400, 'invalid_request', 'body.active');
    await refused(patch({ secret: 'short' }), 400, 'invalid_request', 'body.secret');
    await refused(
      patch({ description: 'x' }, '00000000-0000-4000-8000-000000000000'),
      404,
      'webhook_not_found',
    );
    await refused(patch({ description: 'x' }, 'not-an-id'), 404, 'webhook_not_found');
    await refused(patch({ description: 'x' }, 'x'.repeat(65)), 400, 'invalid_request', 'params.id');
    await refused(
      { method: 'GET', url: '/admin/v1/webhooks/00000000-0000-4000-8000-000000000000' },
      404,
      'webhook_not_found',
    );
    await refused({ method: 'DELETE', url: '/admin/v1/webhooks/nope' }, 404, 'webhook_not_found');
    await refused({ method: 'GET', url: '/admin/v1/webhooks/nope/deliveries' }, 404, 'webhook_not_found');
    await refused(
      { method: 'GET', url: `/admin/v1/webhooks/${hook.id}/deliveries?limit=0` },
      400,
      'invalid_request',
      'querystring.limit',
    );
    await refused(
      { method: 'GET', url: `/admin/v1/webhooks/${hook.id}/deliveries?status=lost` },
      400,
      'invalid_request',
      'querystring.status',
    );
    await refused(
      { method: 'POST', url: '/admin/v1/webhook-deliveries/00000000-0000-4000-8000-000000000000/redeliver' },
      404,
      'webhook_delivery_not_found',
    );
  });

  it('updates fields, audits the names of what changed, and rotates the secret once', async () => {
    const res = await call({
      method: 'PATCH',
      url: `/admin/v1/webhooks/${hook.id}`,
      payload: { description: 'pager', events: [], active: false },
    });
    assert.equal(res.statusCode, 200, res.body);
    const changed = json<WebhookView>(res);
    assert.equal(changed.description, 'pager');
    assert.deepEqual(changed.events, []);
    assert.equal(changed.active, false);
    assert.ok(!('secret' in changed));

    const rotated = await broker.request({
      method: 'PATCH',
      url: `/admin/v1/webhooks/${hook.id}`,
      payload: { rotate_secret: true, active: true },
    });
    assert.equal(rotated.statusCode, 200, rotated.body);
    const next = json<WebhookView>(rotated);
    assert.match(next.secret ?? '', /^whsec_/);
    assert.notEqual(next.secret, hook.secret);
    assert.equal(next.active, true);
    secretsShown.push(next.secret!);

    const audit = json<{ events: { event_type: string; details: Record<string, unknown> }[] }>(
      await call({ method: 'GET', url: `/audit?resource=webhook:${hook.id}` }),
    ).events;
    assert.deepEqual(
      audit.map((e) => [e.event_type, e.details.changed ?? null]),
      [
        ['webhook.updated', ['active', 'secret']],
        ['webhook.updated', ['active', 'description', 'events']],
        ['webhook.created', null],
      ],
    );
    const origin = new URL(hook.url).origin;
    assert.ok(
      audit.every((e) => e.details.origin === origin),
      'audit keeps only the origin',
    );
  });

  it('a PATCH writes only what it changes: a concurrent change of other fields is kept', async () => {
    const created = await broker.request({
      method: 'POST',
      url: '/admin/v1/webhooks',
      payload: {
        url: receiver.url('/hooks/concurrent'),
        description: 'before',
        events: ['connection.revoked'],
      },
    });
    assert.equal(created.statusCode, 201, created.body);
    const { id } = json<WebhookView>(created);
    // A second service over the same database whose read is held until the other PATCH is done.
    const store = createWebhooksStore(broker.container.db);
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow = createWebhooksService({
      store: {
        ...store,
        async findLive(hookId: string) {
          const row = await store.findLive(hookId);
          await gate;
          return row;
        },
      },
      ring: broker.container.keys.ring,
      audit: { record: async () => {} },
      allowLoopbackHttp: true,
    });
    const first = slow.update({} as never, id, { description: 'from the slow PATCH' });
    const second = await call({
      method: 'PATCH',
      url: `/admin/v1/webhooks/${id}`,
      payload: { events: ['connection.expired'] },
    });
    assert.equal(second.statusCode, 200, second.body);
    release();
    const result = await first;
    assert.equal(result.description, 'from the slow PATCH');
    assert.deepEqual(result.events, ['connection.expired']);
    const now = json<WebhookView>(await call({ method: 'GET', url: `/admin/v1/webhooks/${id}` }));
    assert.equal(now.description, 'from the slow PATCH');
    assert.deepEqual(now.events, ['connection.expired'], 'the concurrent change survived');
    assert.equal((await call({ method: 'DELETE', url: `/admin/v1/webhooks/${id}` })).statusCode, 200);
  });

  it('deletes a webhook: gone from the API, secret erased, audited', async () => {
    const res = await call({ method: 'DELETE', url: `/admin/v1/webhooks/${hook.id}` });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal((await call({ method: 'GET', url: `/admin/v1/webhooks/${hook.id}` })).statusCode, 404);
    assert.equal((await call({ method: 'DELETE', url: `/admin/v1/webhooks/${hook.id}` })).statusCode, 404);
    const list = json<WebhookView[]>(await call({ method: 'GET', url: '/admin/v1/webhooks' }));
    assert.ok(!list.some((w) => w.id === hook.id));
    const row = await broker.container.db.kysely
      .selectFrom('webhooks')
      .selectAll()
      .where('id', '=', hook.id)
      .executeTakeFirstOrThrow();
    assert.equal(row.secret, null);
    assert.notEqual(row.deleted_at, null);
  });

  it('bounds the number of live webhooks', async () => {
    const live = json<WebhookView[]>(await call({ method: 'GET', url: '/admin/v1/webhooks' })).length;
    for (let i = live; i < MAX_WEBHOOKS; i++) {
      const res = await broker.request({
        method: 'POST',
        url: '/admin/v1/webhooks',
        payload: { url: `https://hooks.example.com/${i}` },
      });
      assert.equal(res.statusCode, 201, res.body);
    }
    await refused(
      {
        method: 'POST',
        url: '/admin/v1/webhooks',
        payload: { url: 'https://hooks.example.com/one-too-many' },
      },
      409,
      'too_many_webhooks',
    );
  });

  it('never shows a secret again: not in responses, the audit log or the logs', async () => {
    const audit = (await call({ method: 'GET', url: '/audit?limit=500' })).body;
    assert.ok(!audit.includes('tok_pathsecret'), 'the URL path is not audited');
    for (const secret of secretsShown) {
      for (const body of responses)
        assert.ok(!body.includes(secret), `a response shows a secret: ${body.slice(0, 200)}`);
      assert.ok(!broker.logs.some((line) => line.includes(secret)), 'a log line shows a secret');
    }
  });
});

describe('webhook delivery', () => {
  let broker: TestBroker;
  let receiver: Receiver;
  let clock = START;
  const seconds = () => Math.floor(clock / 1000);
  const ids = { connectionId: 'conn-1', workspaceId: 'ws-1', providerId: 'prov-1' };

  async function createHook(payload: Record<string, unknown>): Promise<WebhookView & { secret: string }> {
    const res = await broker.request({ method: 'POST', url: '/admin/v1/webhooks', payload });
    assert.equal(res.statusCode, 201, res.body);
    return json(res);
  }
  async function deliveries(hookId: string, query = ''): Promise<DeliveryView[]> {
    const res = await broker.request({
      method: 'GET',
      url: `/admin/v1/webhooks/${hookId}/deliveries${query}`,
    });
    assert.equal(res.statusCode, 200, res.body);
    return json<{ deliveries: DeliveryView[] }>(res).deliveries;
  }
  const run = () => broker.container.webhookDelivery.runOnce();
  function emit(type: Parameters<Container['events']['emit']>[0]['type'], details?: Record<string, unknown>) {
    return broker.container.events.emit({ ...ids, type, ...(details ? { details } : {}) });
  }

  before(async () => {
    receiver = await startReceiver();
    broker = await startBroker({ env: { NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32' }, now: () => clock });
  });
  after(async () => {
    await broker.close();
    await receiver.close();
  });

  let all: WebhookView & { secret: string };
  let revokedOnly: WebhookView & { secret: string };

  it('delivers a signed event that a receiver verifies, to matching webhooks only', async () => {
    all = await createHook({ url: receiver.url('/all') });
    revokedOnly = await createHook({ url: receiver.url('/revoked'), events: ['connection.revoked'] });
    await emit('connection.active', { reason: 'consent_completed' });
    assert.deepEqual(await run(), { delivered: 1, failed: 0, retried: 0 });
    assert.equal(receiver.on('/revoked').length, 0, 'the filter holds back other types');
    const [got] = receiver.on('/all');
    assert.ok(got);
    assert.equal(
      verifyDelivery(all.secret, got.headers['nexus-signature'] as string, got.body, seconds()),
      undefined,
    );
    assert.equal(got.headers['content-type'], 'application/json');
    assert.equal(got.headers['nexus-event-type'], 'connection.active');
    const body = JSON.parse(got.body) as { id: string; type: string; created_at: string; data: unknown };
    assert.equal(got.headers['nexus-event-id'], body.id);
    assert.deepEqual(body, {
      id: body.id,
      type: 'connection.active',
      created_at: new Date(clock).toISOString(),
      data: {
        connection_id: 'conn-1',
        workspace_id: 'ws-1',
        provider_id: 'prov-1',
        reason: 'consent_completed',
      },
    });
    assert.match(got.headers['nexus-signature'] as string, /^t=\d+,v1=[0-9a-f]{64}$/);

    // What a receiver must refuse: a replay after the window, a changed body, another secret.
    const sig = got.headers['nexus-signature'] as string;
    assert.match(verifyDelivery(all.secret, sig, got.body, seconds() + 301) ?? '', /window/);
    assert.match(verifyDelivery(all.secret, sig, got.body, seconds() - 301) ?? '', /window/);
    assert.equal(verifyDelivery(all.secret, sig, got.body, seconds() + 299), undefined);
    assert.match(
      verifyDelivery(all.secret, sig, got.body.replace('conn-1', 'conn-2'), seconds()) ?? '',
      /mismatch/,
    );
    assert.match(verifyDelivery(revokedOnly.secret, sig, got.body, seconds()) ?? '', /mismatch/);

    await emit('connection.revoked');
    assert.deepEqual(await run(), { delivered: 2, failed: 0, retried: 0 });
    assert.equal(receiver.on('/all').length, 2);
    const [revoked] = receiver.on('/revoked');
    assert.ok(revoked);
    assert.equal(
      verifyDelivery(
        revokedOnly.secret,
        revoked.headers['nexus-signature'] as string,
        revoked.body,
        seconds(),
      ),
      undefined,
    );
    assert.deepEqual(await run(), { delivered: 0, failed: 0, retried: 0 }, 'nothing is sent twice');
  });

  it('shows the delivery log', async () => {
    const log = await deliveries(all.id);
    assert.equal(log.length, 2);
    for (const d of log) {
      assert.equal(d.status, 'delivered');
      assert.equal(d.attempts, 1);
      assert.equal(d.last_status_code, 200);
      assert.equal(d.last_error, null);
      assert.equal(d.delivered_at, new Date(clock).toISOString());
      assert.equal(d.next_attempt_at, null);
      assert.equal(d.webhook_id, all.id);
    }
    assert.deepEqual(log.map((d) => d.event_type).sort(), ['connection.active', 'connection.revoked']);
    const page1 = json<{ deliveries: DeliveryView[]; next_cursor: string }>(
      await broker.request({ method: 'GET', url: `/admin/v1/webhooks/${all.id}/deliveries?limit=1` }),
    );
    assert.equal(page1.deliveries.length, 1);
    const page2 = json<{ deliveries: DeliveryView[]; next_cursor: string | null }>(
      await broker.request({
        method: 'GET',
        url: `/admin/v1/webhooks/${all.id}/deliveries?limit=1&cursor=${page1.next_cursor}`,
      }),
    );
    assert.equal(page2.deliveries.length, 1);
    assert.notEqual(page2.deliveries[0]!.id, page1.deliveries[0]!.id);
    assert.equal(page2.next_cursor, null);
    assert.equal((await deliveries(all.id, '?status=failed')).length, 0);
  });

  it('lists stored events with filters and paging', async () => {
    await broker.container.events.emit({ ...ids, connectionId: 'conn-2', type: 'connection.expired' });
    await run();
    const all3 = json<{ events: EventView[] }>(
      await broker.request({ method: 'GET', url: '/admin/v1/events' }),
    ).events;
    assert.equal(all3.length, 3);
    assert.deepEqual(all3.find((e) => e.type === 'connection.active')?.details, {
      reason: 'consent_completed',
    });
    const byConn = json<{ events: EventView[] }>(
      await broker.request({ method: 'GET', url: '/admin/v1/events?connection_id=conn-2' }),
    ).events;
    assert.deepEqual(
      byConn.map((e) => [e.type, e.connection_id, e.workspace_id, e.provider_id]),
      [['connection.expired', 'conn-2', 'ws-1', 'prov-1']],
    );
    const byType = json<{ events: EventView[] }>(
      await broker.request({ method: 'GET', url: '/admin/v1/events?type=connection.revoked' }),
    ).events;
    assert.deepEqual(
      byType.map((e) => e.type),
      ['connection.revoked'],
    );
    const seen = new Set<string>();
    let cursor: string | null = null;
    do {
      const page: { events: EventView[]; next_cursor: string | null } = json(
        await broker.request({
          method: 'GET',
          url: `/admin/v1/events?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        }),
      );
      for (const e of page.events) seen.add(e.id);
      cursor = page.next_cursor;
    } while (cursor);
    assert.equal(seen.size, 3);
    assertProblem(
      await broker.request({ method: 'GET', url: '/admin/v1/events?cursor=bm9wZQ' }),
      400,
      'invalid_cursor',
    );
    assertProblem(
      await broker.request({ method: 'GET', url: '/admin/v1/events?type=connection.nope' }),
      400,
      'invalid_request',
      'querystring.type',
    );
    assertProblem(
      await broker.request({ method: 'GET', url: '/admin/v1/events?limit=201' }),
      400,
      'invalid_request',
      'querystring.limit',
    );
    assertProblem(
      await broker.request({ method: 'GET', url: '/admin/v1/events?since=1' }),
      400,
      'invalid_request',
      'querystring.since',
    );
  });

  it('refuses events that are malformed or carry secret-looking details, storing nothing', async () => {
    const count = async () =>
      (await broker.container.db.kysely.selectFrom('connection_events').select('id').execute()).length;
    const before = await count();
    const bad: unknown[] = [
      { ...ids, type: 'connection.unknown' },
      { ...ids, connectionId: '', type: 'connection.active' },
      { ...ids, type: 'connection.active', details: { access_token: 'x' } },
      { ...ids, type: 'connection.active', details: { refreshToken: 'x' } },
      { ...ids, type: 'connection.active', details: { client_secret: 'x' } },
      { ...ids, type: 'connection.active', details: { connection_id: 'other' } },
      { ...ids, type: 'connection.active', details: { reason: 'x'.repeat(5000) } },
    ];
    for (const event of bad) {
      await assert.rejects(
        broker.container.events.emit(event as Parameters<Container['events']['emit']>[0]),
        JSON.stringify(event).slice(0, 100),
      );
    }
    assert.equal(await count(), before);
  });

  it('retries a failing receiver with exponential backoff and jitter, then gives up', async () => {
    // From here on each test's webhooks are the only ones listening.
    const off = await broker.request({
      method: 'PATCH',
      url: `/admin/v1/webhooks/${all.id}`,
      payload: { active: false },
    });
    assert.equal(json<WebhookView>(off).active, false);
    let answer = 500;
    receiver.state.respond = (r) => ({ status: r.path === '/flaky' ? answer : 200 });
    const flaky = await createHook({ url: receiver.url('/flaky'), events: ['connection.refresh_failed'] });
    await emit('connection.refresh_failed', { failures: 1 });
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const result = await run();
      assert.equal(receiver.on('/flaky').length, attempt, `attempt ${attempt} was made`);
      const [d] = await deliveries(flaky.id);
      assert.ok(d);
      assert.equal(d.attempts, attempt);
      assert.equal(d.last_status_code, 500);
      if (attempt < MAX_ATTEMPTS) {
        assert.deepEqual(result, { delivered: 0, failed: 0, retried: 1 });
        assert.equal(d.status, 'pending');
        assert.equal(d.last_error, 'the receiver answered 500');
        const delay = Date.parse(d.next_attempt_at!) - clock;
        const nominal = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (attempt - 1));
        assert.ok(
          delay >= nominal * 0.8 && delay <= Math.min(MAX_DELAY_MS, nominal * 1.2),
          `attempt ${attempt}: delay ${delay}`,
        );
        // Not before it is due.
        clock += delay - 1000;
        assert.deepEqual(await run(), { delivered: 0, failed: 0, retried: 0 });
        clock += 1000;
      } else {
        assert.deepEqual(result, { delivered: 0, failed: 1, retried: 0 });
        assert.equal(d.status, 'failed');
        assert.equal(d.next_attempt_at, null);
        assert.match(d.last_error ?? '', /answered 500; gave up after 12 attempts/);
      }
    }
    clock += MAX_DELAY_MS * 2;
    assert.deepEqual(await run(), { delivered: 0, failed: 0, retried: 0 });
    assert.equal(receiver.on('/flaky').length, MAX_ATTEMPTS, 'no attempt after giving up');

    // Redelivery: a new delivery of the same event, sent on the next pass.
    answer = 200;
    const [failed] = await deliveries(flaky.id);
    const res = await broker.request({
      method: 'POST',
      url: `/admin/v1/webhook-deliveries/${failed!.id}/redeliver`,
    });
    assert.equal(res.statusCode, 201, res.body);
    const queued = json<DeliveryView>(res);
    assert.equal(queued.status, 'pending');
    assert.equal(queued.attempts, 0);
    assert.equal(queued.event_id, failed!.event_id);
    assert.notEqual(queued.id, failed!.id);
    assertProblem(
      await broker.request({ method: 'POST', url: `/admin/v1/webhook-deliveries/${queued.id}/redeliver` }),
      409,
      'webhook_delivery_pending',
    );
    assert.deepEqual(await run(), { delivered: 1, failed: 0, retried: 0 });
    const last = receiver.on('/flaky').at(-1)!;
    assert.equal(last.headers['nexus-event-id'], failed!.event_id, 'the receiver can deduplicate');
    assert.equal(last.headers['nexus-delivery-id'], queued.id);
    assert.equal(
      verifyDelivery(flaky.secret, last.headers['nexus-signature'] as string, last.body, seconds()),
      undefined,
    );
    const log = await deliveries(flaky.id);
    assert.deepEqual(
      log.map((d) => [d.id, d.status]).sort(),
      [
        [failed!.id, 'failed'],
        [queued.id, 'delivered'],
      ].sort(),
    );
    const audit = json<{ events: { event_type: string; details: Record<string, unknown> }[] }>(
      await broker.request({ method: 'GET', url: `/audit?event_type=webhook.redelivery_requested` }),
    ).events;
    assert.equal(audit[0]?.details.original_delivery_id, failed!.id);

    // A disabled webhook gets no new deliveries and no redelivery.
    await broker.request({
      method: 'PATCH',
      url: `/admin/v1/webhooks/${flaky.id}`,
      payload: { active: false },
    });
    assertProblem(
      await broker.request({ method: 'POST', url: `/admin/v1/webhook-deliveries/${failed!.id}/redeliver` }),
      409,
      'webhook_inactive',
    );
    await emit('connection.refresh_failed');
    assert.equal((await deliveries(flaky.id)).length, 2);
  });

  it('honours Retry-After on 429 and 503', async () => {
    receiver.state.respond = (r) =>
      r.path === '/busy' ? { status: 429, headers: { 'retry-after': '1200' } } : { status: 200 };
    const busy = await createHook({ url: receiver.url('/busy'), events: ['connection.attention_required'] });
    await emit('connection.attention_required', { reason: 'invalid_grant' });
    assert.deepEqual(await run(), { delivered: 0, failed: 0, retried: 1 });
    const [d] = await deliveries(busy.id);
    assert.equal(d!.last_status_code, 429);
    assert.ok(Date.parse(d!.next_attempt_at!) - clock >= 1_200_000);
    receiver.state.respond = () => ({ status: 200 });
    clock += 1_200_000;
    assert.deepEqual(await run(), { delivered: 1, failed: 0, retried: 0 });
  });

  it('never contacts a private address outside the allowance, and says why', async () => {
    const inside = await startReceiver('127.0.0.2');
    try {
      const hook = await createHook({ url: inside.url('/internal'), events: ['connection.expired'] });
      await emit('connection.expired');
      assert.deepEqual(await run(), { delivered: 0, failed: 1, retried: 0 });
      assert.equal(inside.received.length, 0, 'the private receiver was never contacted');
      const [d] = await deliveries(hook.id);
      assert.equal(d!.status, 'failed');
      assert.equal(d!.last_status_code, null);
      assert.match(
        d!.last_error ?? '',
        /^not sent: 127\.0\.0\.2 is a private or special-purpose address; allow the range with NEXUS_EGRESS_ALLOWED_CIDRS$/,
      );
      clock += MAX_DELAY_MS * 2;
      assert.deepEqual(await run(), { delivered: 0, failed: 0, retried: 0 });
      assert.equal(inside.received.length, 0);
    } finally {
      await inside.close();
    }
  });

  it('does not follow redirects, and retries an unreachable receiver', async () => {
    receiver.state.respond = (r) =>
      r.path === '/moved' ? { status: 307, headers: { location: receiver.url('/all') } } : { status: 200 };
    const moved = await createHook({ url: receiver.url('/moved'), events: ['connection.refresh_recovered'] });
    const closed = await startReceiver();
    const gone = await createHook({ url: closed.url('/gone'), events: ['connection.refresh_recovered'] });
    await closed.close();
    const before = receiver.on('/all').length;
    await emit('connection.refresh_recovered');
    assert.deepEqual(await run(), { delivered: 0, failed: 0, retried: 2 });
    assert.equal(receiver.on('/all').length, before, 'the redirect was not followed');
    assert.match((await deliveries(moved.id))[0]!.last_error ?? '', /redirects are not followed/);
    assert.match((await deliveries(gone.id))[0]!.last_error ?? '', /could not be reached/);
    receiver.state.respond = () => ({ status: 200 });
  });

  it('signs with a rotated secret and binds the secret to its row', async () => {
    const hook = await createHook({ url: receiver.url('/rotating'), events: ['connection.active'] });
    const rotated = json<{ secret: string }>(
      await broker.request({
        method: 'PATCH',
        url: `/admin/v1/webhooks/${hook.id}`,
        payload: { rotate_secret: true },
      }),
    ).secret;
    await emit('connection.active');
    await run();
    const got = receiver.on('/rotating')[0]!;
    const sig = got.headers['nexus-signature'] as string;
    assert.equal(verifyDelivery(rotated, sig, got.body, seconds()), undefined);
    assert.match(verifyDelivery(hook.secret, sig, got.body, seconds()) ?? '', /mismatch/);

    // A ciphertext copied onto another webhook's row does not open there.
    const k = broker.container.db.kysely;
    const source = await k
      .selectFrom('webhooks')
      .select('secret')
      .where('id', '=', all.id)
      .executeTakeFirstOrThrow();
    await k.updateTable('webhooks').set({ secret: source.secret }).where('id', '=', hook.id).execute();
    await emit('connection.active');
    const sent = receiver.received.length;
    assert.deepEqual(await run(), { delivered: 0, failed: 0, retried: 1 });
    assert.equal(receiver.received.length, sent, 'nothing signed with a foreign secret');
    const pending = (await deliveries(hook.id)).filter((d) => d.status === 'pending');
    assert.equal(pending.length, 1);
    assert.match(pending[0]!.last_error ?? '', /could not be decrypted/);

    // Key rotation covers webhook secrets.
    assert.ok(ENCRYPTED_COLUMNS.some((c) => c.table === 'webhooks' && c.column === 'secret'));
    const usage = await ciphertextKeyUsage(broker.container.db);
    const liveSecrets = await k.selectFrom('webhooks').select('id').where('secret', 'is not', null).execute();
    assert.ok([...usage.values()].reduce((a, b) => a + b, 0) >= liveSecrets.length);
  });

  it('fails the queued deliveries of a deleted webhook', async () => {
    receiver.state.respond = () => ({ status: 500 });
    const doomed = await createHook({ url: receiver.url('/doomed'), events: ['connection.expired'] });
    await emit('connection.expired');
    await run();
    assert.equal((await deliveries(doomed.id))[0]!.status, 'pending');
    const log = await broker.container.db.kysely
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('webhook_id', '=', doomed.id)
      .execute();
    await broker.request({ method: 'DELETE', url: `/admin/v1/webhooks/${doomed.id}` });
    const after = await broker.container.db.kysely
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('id', '=', log[0]!.id)
      .executeTakeFirstOrThrow();
    assert.equal(after.status, 'failed');
    assert.equal(after.last_error, 'the webhook was deleted');
    clock += MAX_DELAY_MS * 2;
    const sent = receiver.on('/doomed').length;
    await run();
    assert.equal(receiver.on('/doomed').length, sent);
    assertProblem(
      await broker.request({ method: 'POST', url: `/admin/v1/webhook-deliveries/${log[0]!.id}/redeliver` }),
      404,
      'webhook_not_found',
    );
    receiver.state.respond = () => ({ status: 200 });
  });

  it('ends the queued deliveries of a disabled webhook as failed; they can be redelivered once enabled', async () => {
    receiver.state.respond = () => ({ status: 502 });
    const paused = await createHook({ url: receiver.url('/paused'), events: ['connection.revoked'] });
    const patchActive = (active: boolean) =>
      broker.request({ method: 'PATCH', url: `/admin/v1/webhooks/${paused.id}`, payload: { active } });
    await emit('connection.revoked');
    const first = await run();
    assert.equal(first.retried, 2, 'revokedOnly and paused both failed (502)');
    assert.equal((await patchActive(false)).statusCode, 200);
    clock += MAX_DELAY_MS;
    const sent = receiver.on('/paused').length;
    await run();
    assert.equal(receiver.on('/paused').length, sent, 'nothing sent to a disabled webhook');
    const [d] = await deliveries(paused.id);
    assert.equal(d!.status, 'failed');
    assert.equal(d!.last_error, 'the webhook is disabled');
    assert.equal(d!.attempts, 1, 'only the real attempt counts');
    receiver.state.respond = () => ({ status: 200 });
    assert.equal((await patchActive(true)).statusCode, 200);
    const again = await broker.request({
      method: 'POST',
      url: `/admin/v1/webhook-deliveries/${d!.id}/redeliver`,
    });
    assert.equal(again.statusCode, 201, again.body);
    await run();
    assert.equal(receiver.on('/paused').length, sent + 1);
    assert.equal((await deliveries(paused.id, '?status=delivered')).length, 1);
  });

  it('counts deliveries by outcome in /metrics', async () => {
    const text = (await broker.request({ method: 'GET', url: '/metrics' })).body;
    const value = (outcome: string) =>
      Number(
        new RegExp(`^nexus_webhook_deliveries_total\\{outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text)?.[1],
      );
    assert.ok(value('delivered') >= 6, text);
    assert.ok(value('retried') >= MAX_ATTEMPTS - 1);
    assert.ok(value('failed') >= 2);
    assert.match(text, /^nexus_webhook_delivery_duration_seconds_count \d+$/m);
  });
});

describe('webhook delivery across replicas', () => {
  let broker: TestBroker;
  let replica: Container;
  let receiver: Receiver;
  let clock = START;

  before(async () => {
    receiver = await startReceiver();
    broker = await startBroker({ env: { NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32' }, now: () => clock });
    // A second broker on the same database: its own pool and its own lease owner.
    replica = buildContainer(broker.container.config, { now: () => clock });
  });
  after(async () => {
    await replica.close();
    await broker.close();
    await receiver.close();
  });

  it('delivers each event exactly once with two workers', async () => {
    receiver.state.respond = () => ({ status: 200, delayMs: 5 });
    const res = await broker.request({
      method: 'POST',
      url: '/admin/v1/webhooks',
      payload: { url: receiver.url('/x') },
    });
    assert.equal(res.statusCode, 201, res.body);
    const n = 60;
    for (let i = 0; i < n; i++) {
      await (i % 2 === 0 ? broker.container : replica).events.emit({
        connectionId: `c-${i}`,
        workspaceId: 'ws',
        providerId: 'p',
        type: 'connection.active',
      });
    }
    const results = await Promise.all([
      broker.container.webhookDelivery.runOnce(),
      replica.webhookDelivery.runOnce(),
      broker.container.webhookDelivery.runOnce(),
      replica.webhookDelivery.runOnce(),
    ]);
    assert.equal(
      results.reduce((sum, r) => sum + r.delivered, 0),
      n,
      JSON.stringify(results),
    );
    assert.ok(results.every((r) => r.failed === 0 && r.retried === 0));
    const perEvent = new Map<string, number>();
    for (const r of receiver.received) {
      const id = r.headers['nexus-event-id'] as string;
      perEvent.set(id, (perEvent.get(id) ?? 0) + 1);
    }
    assert.equal(perEvent.size, n);
    assert.ok(
      [...perEvent.values()].every((count) => count === 1),
      'no event delivered twice',
    );
    assert.ok(results[0]!.delivered > 0 || results[2]!.delivered > 0, 'the first broker took part');
    assert.ok(results[1]!.delivered > 0 || results[3]!.delivered > 0, 'the replica took part');
  });

  it('takes over the deliveries of a crashed worker once its lease expires', async () => {
    await broker.container.events.emit({
      connectionId: 'c-crash',
      workspaceId: 'ws',
      providerId: 'p',
      type: 'connection.revoked',
    });
    // A worker that claimed the delivery and died before answering.
    const store = createDeliveriesStore(broker.container.db);
    const leaseMs = broker.container.config.upstreamTimeoutMs + 60_000;
    const [claimed] = await store.claim('crashed-worker', clock, leaseMs, 10);
    assert.ok(claimed);
    assert.deepEqual(
      await replica.webhookDelivery.runOnce(),
      { delivered: 0, failed: 0, retried: 0 },
      'still leased',
    );
    clock += leaseMs;
    const before = receiver.received.length;
    assert.deepEqual(await replica.webhookDelivery.runOnce(), { delivered: 1, failed: 0, retried: 0 });
    assert.equal(receiver.received.length, before + 1);
    const row = await broker.container.db.kysely
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('id', '=', claimed.id)
      .executeTakeFirstOrThrow();
    assert.equal(row.status, 'delivered');
    assert.equal(row.attempts, 2, 'the lost attempt counts');
    // The late worker's result is discarded: it no longer holds the lease.
    assert.equal(
      await store.complete(
        claimed.id,
        'crashed-worker',
        {
          status: 'failed',
          next_attempt_at: null,
          last_status_code: null,
          last_error: 'late',
          delivered_at: null,
        },
        clock,
      ),
      false,
    );
  });

  it('gives a delivery up when every worker that claimed it died, after the last attempt', async () => {
    await broker.container.events.emit({
      connectionId: 'c-always-crashing',
      workspaceId: 'ws',
      providerId: 'p',
      type: 'connection.expired',
    });
    const store = createDeliveriesStore(broker.container.db);
    const leaseMs = broker.container.config.upstreamTimeoutMs + 60_000;
    // Twelve workers in turn claim it and die before recording anything (a crash during the send).
    let id = '';
    for (let i = 0; i < MAX_ATTEMPTS; i++) {
      const [claimed] = await store.claim(`dying-${i}`, clock, leaseMs, 10);
      assert.ok(claimed, `claim ${i + 1}`);
      id = claimed.id;
      clock += leaseMs;
    }
    const before = receiver.received.length;
    assert.deepEqual(await replica.webhookDelivery.runOnce(), { delivered: 0, failed: 1, retried: 0 });
    assert.equal(receiver.received.length, before, 'not sent a thirteenth time');
    const row = await broker.container.db.kysely
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    assert.deepEqual([row.status, row.attempts, row.next_attempt_at], ['failed', MAX_ATTEMPTS, null]);
    assert.match(row.last_error ?? '', /gave up after 12 attempts/);
    clock += leaseMs;
    assert.deepEqual(
      await replica.webhookDelivery.runOnce(),
      { delivered: 0, failed: 0, retried: 0 },
      'ended',
    );
  });
});
