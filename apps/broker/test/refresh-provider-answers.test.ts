/**
 * A rotating provider (the real oidc-provider) whose refresh answers are odd but hold a new
 * refresh token: the broker keeps it, because the provider has already spent the old one. And a
 * provider whose error answer echoes what it was sent: the text stays out of `last_error`, the
 * connection views, events and logs. Runs on SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import * as oauth from 'oauth4webapi';
import { describeUpstreamError } from '../src/modules/connections/refresh-classify.ts';
import { secretError } from '../src/modules/secrets/secrets.errors.ts';
import { Scenario } from './oauth-scenario.ts';
import type { OidcAnswerShape } from './oidc-fixture.ts';

type Rewrite = (body: Record<string, unknown>) => Record<string, unknown>;

describe('refresh answers that are odd but carry a rotated refresh token', () => {
  const s = new Scenario();
  before(() => s.start({ rotate: true }));
  after(() => s.close());
  afterEach(() => s.idp.setTokenResponseRewrite(undefined));
  const row = async (id: string) => (await s.broker.container.connectionsStore.find(id))!;

  const cases: [string, string, Rewrite, OidcAnswerShape?][] = [
    ['expires_in -1', 'idp-basic', (b) => ({ ...b, expires_in: -1 })],
    ['no token_type', 'idp-basic', ({ token_type: _, ...b }) => b],
    ['token_type "mac"', 'idp-basic', (b) => ({ ...b, token_type: 'mac' })],
    ['scope 42', 'idp-basic', (b) => ({ ...b, scope: 42 })],
    [
      'JSON sent as text/plain',
      'idp-basic',
      (b) => ({ ...b, expires_in: 'soon' }),
      { contentType: 'text/plain' },
    ],
    [
      'JSON sent as Application/JSON',
      'idp-basic',
      (b) => ({ ...b, expires_in: 'soon' }),
      { contentType: 'Application/JSON' },
    ],
    ['an id_token that fails its checks', 'idp-discovered', (b) => ({ ...b, id_token: 'garbage' })],
  ];
  let n = 0;
  for (const [what, provider, rewrite, shape] of cases)
    it(`${what}: the new refresh token is kept, and the next refresh spends it`, async () => {
      const id = await s.connect(provider, `odd-${n++}`);
      const presented = (await s.stored(id)).refresh_token!;
      let sent: string | undefined;
      s.idp.setTokenResponseRewrite((body) => {
        const out = rewrite(body);
        sent = out.refresh_token as string;
        return out;
      }, shape);
      const first = await s.call({ method: 'POST', url: `/v1/refresh/${id}` });
      s.idp.setTokenResponseRewrite(undefined);
      assert.equal(first.statusCode, 200, first.body);
      assert.ok(sent !== undefined && sent !== presented, 'the provider rotated the token');
      assert.equal((await s.stored(id)).refresh_token, sent, 'the rotated token is stored');
      assert.equal((await row(id)).refresh_started_at, null, 'no outcome left unknown');

      s.clock += 10 * 60_000;
      const reused = s.idp.counts.refresh_reused;
      const second = await s.call({ method: 'POST', url: `/v1/refresh/${id}` });
      assert.equal(second.statusCode, 200, second.body);
      assert.equal(s.idp.counts.refresh_reused, reused, 'no refresh token presented twice');
      assert.equal((await row(id)).status, 'active');
    });
});

describe('a successful refresh answer that cannot be used, with a rotated refresh token', () => {
  const s = new Scenario();
  before(() => s.start({ rotate: true }));
  after(() => s.close());
  afterEach(() => s.idp.setTokenResponseRewrite(undefined));

  it('keeps the new refresh token, fails the attempt (502), and the next refresh spends the new one', async () => {
    const id = await s.connect('idp-basic', 'no-access-token');
    const before = await s.stored(id);
    let sent: string | undefined;
    s.idp.setTokenResponseRewrite(({ access_token: _, ...body }) => {
      sent = body.refresh_token as string;
      return body;
    });
    const first = await s.call({ method: 'POST', url: `/v1/refresh/${id}` });
    s.idp.setTokenResponseRewrite(undefined);
    assert.equal(first.statusCode, 502, first.body);
    assert.equal(JSON.parse(first.body).error, 'provider_unavailable');
    assert.ok(sent !== undefined && sent !== before.refresh_token, 'the provider rotated the token');
    const kept = await s.stored(id);
    assert.equal(kept.refresh_token, sent, 'the rotated token is stored');
    assert.equal(kept.access_token, before.access_token, 'with the access token we had');
    const row = (await s.broker.container.connectionsStore.find(id))!;
    assert.equal(row.refresh_started_at, null, 'the outcome is known');
    assert.equal(row.refresh_failures, 1);
    assert.match(row.last_error ?? '', /access_token/);

    s.clock += 10 * 60_000;
    const reused = s.idp.counts.refresh_reused;
    const second = await s.call({ method: 'POST', url: `/v1/refresh/${id}` });
    assert.equal(second.statusCode, 200, second.body);
    assert.equal(s.idp.counts.refresh_reused, reused, 'no refresh token presented twice');
    const recovered = (await s.broker.container.connectionsStore.find(id))!;
    assert.deepEqual(
      [recovered.status, recovered.refresh_failures, recovered.last_error],
      ['active', 0, null],
    );
  });
});

describe('a provider error answer that echoes the request', () => {
  const s = new Scenario();
  before(() => s.start({ rotate: false }));
  after(() => s.close());
  afterEach(() => s.idp.setTokenResponseRewrite(undefined));

  for (const [what, pad] of [
    ['short', 0],
    ['padded to 200 kB', 200_000],
  ] as const)
    it(`${what}: refused cleanly, and the echoed token is nowhere to be read`, async () => {
      const id = await s.connect('idp-basic', `echo-${pad}`);
      const presented = (await s.stored(id)).refresh_token!;
      const error = `invalid_request refresh_token=${presented} ${'A'.repeat(pad)}`;
      s.idp.setTokenResponseRewrite(() => ({ error }), { status: 400 });
      const res = await s.call({ method: 'POST', url: `/v1/refresh/${id}` });
      assert.equal(res.statusCode, 502, res.body);
      assert.equal(JSON.parse(res.body).error, 'provider_unavailable');
      const found = (await s.broker.container.connectionsStore.find(id))!;
      assert.equal(found.last_error, '400 error', 'the code, or nothing of what the provider said');
      const view = await s.call({ method: 'GET', url: `/connections/${id}` });
      assert.equal(view.statusCode, 200);
      const events = await s.call({ method: 'GET', url: `/admin/v1/events?connection_id=${id}` });
      assert.ok(
        JSON.parse(events.body).events.some((e: { type: string }) => e.type === 'connection.refresh_failed'),
        'the failure is an event',
      );
      for (const [where, text] of [
        ['the answer', res.body],
        ['the view', view.body],
        ['the events', events.body],
        ['the logs', s.broker.logs.join('\n')],
      ] as const)
        assert.ok(!text.includes(presented), `no refresh token in ${where}`);
    });
});

describe('what a failed refresh says of its cause (last_error)', () => {
  it("names a secret backend's failure by its code, never with the SDK's text", () => {
    const sdk = Object.assign(
      new Error('User: arn:aws:sts::123456789012:assumed-role/nexus/i-0abc is not authorized'),
      { name: 'AccessDeniedException' },
    );
    const thrown = secretError('secret_backend_denied', { detail: `aws: ${sdk.message}`, cause: sdk });
    assert.equal(describeUpstreamError(thrown), 'secret_backend_denied');
    // Whatever its cause's code: `ECONNREFUSED` alone would read as the provider's refusal.
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.9:443'), { code: 'ECONNREFUSED' });
    const unavailable = secretError('secret_backend_unavailable', { cause: refused });
    assert.equal(describeUpstreamError(unavailable), 'secret_backend_unavailable');
  });

  it('quotes nothing of a token answer that is not valid JSON', async () => {
    const as = { issuer: 'https://idp.example', token_endpoint: 'https://idp.example/token' };
    const body = '{"token_type":"Bearer","access_token":ya29.SECRET-ACCESS}';
    const response = new Response(body, { status: 200, headers: { 'content-type': 'application/json' } });
    const error = await oauth.processRefreshTokenResponse(as, { client_id: 'c' }, response).then(
      () => assert.fail('refused'),
      (e: unknown) => e,
    );
    const reason = describeUpstreamError(error);
    assert.doesNotMatch(reason, /ya29|SECRET/);
    assert.match(reason, /JSON/);
  });

  it('keeps what explains a refused connection or a socket failure', () => {
    const fetchFailed = (cause: Error) => Object.assign(new TypeError('fetch failed'), { cause });
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    assert.equal(describeUpstreamError(fetchFailed(refused)), 'ECONNREFUSED');
    assert.equal(describeUpstreamError(new Error('anything at all')), 'Error');
  });
});
