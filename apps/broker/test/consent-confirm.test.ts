/**
 * Consent bound to the person who asked (issue #21, decision 0017), against a real OpenID provider
 * (oidc-provider): with a verifier page configured, a consent asked with `verify: true` does not
 * activate at the callback. The browser goes to the app's verifier page with a single-use flow_id;
 * the app's server confirms the user it has signed in. The right user activates the connection; a
 * forwarded link completed by someone else fails it (`user_mismatch`), audited, with the grant
 * revoked at the provider. Without a verifier, nothing changes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config/load.ts';
import { openText } from '../src/crypto/envelope.ts';
import { heldBinding } from '../src/modules/consent/confirm.service.ts';
import { assertProblem, createAgentWithToken, json } from './harness.ts';
import { REDIRECT, RETURN, Scenario } from './oauth-scenario.ts';

const VERIFIER = 'http://localhost:3000/verify-user';

type Started = { authUrl: string; connection_id: string };
type Confirmed = {
  status: string;
  connection_id: string;
  error?: string;
  provider_revoked?: boolean;
  redirect_url: string | null;
};

/** request-connection (as `key`, the admin key by default) for `user`, with `verify`. */
async function requestConnection(
  s: Scenario,
  user: string,
  extra: Record<string, unknown> = { verify: true },
  key?: string,
): Promise<Started> {
  const res = await s.call({
    method: 'POST',
    url: '/v1/request-connection',
    payload: { user_id: user, provider_name: 'idp-discovered', return_url: RETURN, ...extra },
    ...(key === undefined ? {} : { key: null, headers: { authorization: `Bearer ${key}` } }),
  });
  assert.equal(res.statusCode, 200, res.body);
  return json<Started>(res);
}

/** The person holding the link signs in at the provider as `account`; where the callback sends the browser. */
async function completeAs(s: Scenario, authUrl: string, account: string): Promise<URL> {
  const callback = await s.idp.consent(authUrl, account);
  assert.equal(callback.origin + callback.pathname, REDIRECT);
  const res = await s.call({ method: 'GET', url: callback.pathname + callback.search, key: null }, 302);
  return new URL(res.headers.location as string);
}

async function status(s: Scenario, id: string): Promise<string> {
  return json<{ status: string }>(await s.call({ method: 'GET', url: `/v1/check-connection/${id}` }, 200))
    .status;
}

async function confirm(s: Scenario, flowId: string, user: string, key?: string) {
  return s.call({
    method: 'POST',
    url: '/v1/connect/confirm',
    payload: { flow_id: flowId, user_id: user },
    ...(key === undefined ? {} : { key: null, headers: { authorization: `Bearer ${key}` } }),
  });
}

describe('consent confirmed by the app that asked (verifier configured)', () => {
  const s = new Scenario();
  before(() => s.start({ env: { NEXUS_CONNECT_VERIFIER_URL: VERIFIER } }));
  after(() => s.close());

  it('without verify, a consent activates at the callback as before', async () => {
    const id = await s.connect('idp-discovered', 'plain-user');
    assert.equal(await status(s, id), 'active');
  });

  it('the right user confirms: pending until then, active after, and the flow_id works once', async () => {
    const started = await requestConnection(s, 'alice');
    const verifier = await completeAs(s, started.authUrl, 'alice-account');
    assert.equal(verifier.origin + verifier.pathname, VERIFIER);
    const flowId = verifier.searchParams.get('flow_id')!;
    assert.match(flowId, /^[A-Za-z0-9_-]{43}$/);
    assert.deepEqual([...verifier.searchParams.keys()], ['flow_id'], 'nothing else travels in the URL');
    assert.equal(await status(s, started.connection_id), 'pending', 'not active before the app confirms');
    const early = await s.call({ method: 'GET', url: `/v1/token/${started.connection_id}` });
    assert.notEqual(early.statusCode, 200, 'no token before the confirmation');

    const res = await confirm(s, flowId, 'alice');
    assert.equal(res.statusCode, 200, res.body);
    const body = json<Confirmed>(res);
    assert.equal(body.status, 'active');
    const back = new URL(body.redirect_url!);
    assert.equal(back.origin + back.pathname, RETURN);
    assert.equal(back.searchParams.get('status'), 'success');
    assert.equal(back.searchParams.get('connection_id'), started.connection_id);
    assert.equal(back.searchParams.get('provider'), 'idp-discovered');
    assert.equal(await status(s, started.connection_id), 'active');
    assert.ok((await s.token(started.connection_id)).access_token);
    // Used: refused with its code, and nothing changes.
    assertProblem(await confirm(s, flowId, 'alice'), 409, 'confirm_flow_used');
    assertProblem(await confirm(s, flowId, 'mallory'), 409, 'confirm_flow_used');
    assert.equal(await status(s, started.connection_id), 'active');
    const row = await s.broker.container.db.kysely
      .selectFrom('consent_confirmations')
      .select(['held', 'used_at'])
      .where('connection_id', '=', started.connection_id)
      .executeTakeFirstOrThrow();
    assert.equal(row.held, null, 'the held credentials are erased once used');
  });

  it('a confirmation that fails before deciding (activation unavailable) can be retried', async () => {
    const started = await requestConnection(s, 'retry-user');
    const verifier = await completeAs(s, started.authUrl, 'retry-account');
    const flowId = verifier.searchParams.get('flow_id')!;
    // A fault injected into the broker's own connections service (the object the confirmation
    // calls): its activation fails once, as it does while the database or secret backend is away.
    const connections = s.broker.container.connections;
    const activate = connections.activate;
    connections.activate = async () => {
      throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
    };
    try {
      const failed = await confirm(s, flowId, 'retry-user');
      assert.equal(failed.statusCode, 503, failed.body);
    } finally {
      connections.activate = activate;
    }
    assert.equal(await status(s, started.connection_id), 'pending');
    // The retry confirms the same flow: the credentials were not lost to the failed attempt.
    const retried = await confirm(s, flowId, 'retry-user');
    assert.equal(retried.statusCode, 200, retried.body);
    assert.equal(json<Confirmed>(retried).status, 'active');
    assert.ok((await s.token(started.connection_id)).access_token);
    assertProblem(await confirm(s, flowId, 'retry-user'), 409, 'confirm_flow_used');
  });

  it('a confirmation whose activation committed before a later step failed is not given back', async () => {
    const started = await requestConnection(s, 'late-fault-user');
    const verifier = await completeAs(s, started.authUrl, 'late-fault-account');
    const flowId = verifier.searchParams.get('flow_id')!;
    // A fault injected into the broker's own audit service: the activation's audit event (written
    // after the row became active) fails once, as it does when a pooled connection is reset.
    const audit = s.broker.container.audit;
    const record = audit.record;
    let failed = false;
    audit.record = async (ctx, event) => {
      if (!failed && event.action === 'connection.activated') {
        failed = true;
        throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
      }
      return record(ctx, event);
    };
    try {
      const first = await confirm(s, flowId, 'late-fault-user');
      assert.equal(first.statusCode, 503, first.body);
    } finally {
      audit.record = record;
    }
    assert.ok(failed, 'the fault was hit');
    assert.equal(await status(s, started.connection_id), 'active', 'activated before the fault');
    // Decided: a retry does not activate it a second time with the held tokens.
    assertProblem(await confirm(s, flowId, 'late-fault-user'), 409, 'confirm_flow_used');
  });

  it('a forwarded link completed by someone else: mismatch fails the connection, audited, grant revoked at the provider', async () => {
    const started = await requestConnection(s, 'alice-2');
    // Alice forwards the link; Mallory opens it and signs in with her own account.
    const verifier = await completeAs(s, started.authUrl, 'mallory-account');
    const flowId = verifier.searchParams.get('flow_id')!;
    // What the broker holds (read the way only the broker can), to check the provider afterwards.
    const held = await s.broker.container.db.kysely
      .selectFrom('consent_confirmations')
      .selectAll()
      .where('connection_id', '=', started.connection_id)
      .executeTakeFirstOrThrow();
    const { activation } = JSON.parse(
      openText(s.broker.container.keys.ring, held.held!, heldBinding(held.id)),
    ) as { activation: { tokens: { refresh_token?: string } } };
    const refreshToken = activation.tokens.refresh_token!;
    assert.ok(refreshToken, 'the provider issued a refresh token');
    const revocationsBefore = s.idp.counts.revocation;

    // The app's server knows Mallory is the one signed in to the app.
    const res = await confirm(s, flowId, 'mallory');
    assert.equal(res.statusCode, 200, res.body);
    const body = json<Confirmed>(res);
    assert.equal(body.status, 'failed');
    assert.equal(body.error, 'user_mismatch');
    assert.equal(body.provider_revoked, true);
    const back = new URL(body.redirect_url!);
    assert.equal(back.searchParams.get('status'), 'failed');
    assert.equal(back.searchParams.get('error'), 'user_mismatch');
    assert.ok(!res.body.includes(refreshToken));

    assert.equal(await status(s, started.connection_id), 'failed');
    const row = await s.broker.container.connectionsStore.find(started.connection_id);
    assert.equal(row!.last_error, 'user_mismatch');
    assert.equal(row!.credentials, null, 'nothing stored on the connection');
    const after = await s.broker.container.db.kysely
      .selectFrom('consent_confirmations')
      .select('held')
      .where('id', '=', held.id)
      .executeTakeFirstOrThrow();
    assert.equal(after.held, null, 'the held copy is erased');
    const audited = await s.broker.container.db.kysely
      .selectFrom('audit_events')
      .selectAll()
      .where('resource_id', '=', started.connection_id)
      .where('action', '=', 'connection.failed')
      .execute();
    assert.equal(audited.length, 1);
    assert.equal(audited[0]!.outcome, 'failure');
    assert.equal((JSON.parse(audited[0]!.details!) as { error: string }).error, 'user_mismatch');
    assert.ok(!audited[0]!.details!.includes(refreshToken));

    // At the provider: revoked (refresh and access token), and the refresh token no longer works.
    assert.ok(s.idp.counts.revocation >= revocationsBefore + 1, 'the revocation reached the provider');
    assert.deepEqual(await s.refreshAtProvider(refreshToken), { status: 400, error: 'invalid_grant' });
    // Confirming again does not bring it back.
    assertProblem(await confirm(s, flowId, 'alice-2'), 409, 'confirm_flow_used');
    assert.equal(await status(s, started.connection_id), 'failed');
  });

  it('unknown, malformed, another caller’s and expired flow ids are refused, and nothing changes', async () => {
    assertProblem(await confirm(s, 'A'.repeat(43), 'alice'), 404, 'confirm_flow_unknown');
    assertProblem(await confirm(s, 'not a flow id', 'alice'), 404, 'confirm_flow_unknown');
    assertProblem(
      await s.call({
        method: 'POST',
        url: '/v1/connect/confirm',
        payload: { flow_id: 'x', user_id: 'a', more: 1 },
      }),
      400,
      'invalid_request',
    );

    // Started by an agent: only that agent may confirm (the admin key, another caller, may not).
    const agent = await createAgentWithToken(s.broker, 'confirm-agent', {
      allowed_providers: ['*'],
      allowed_workspaces: ['*'],
    });
    const other = await createAgentWithToken(s.broker, 'other-agent', {
      allowed_providers: ['*'],
      allowed_workspaces: ['*'],
    });
    const started = await requestConnection(s, 'bob', { verify: true }, agent.token);
    const flowId = (await completeAs(s, started.authUrl, 'bob-account')).searchParams.get('flow_id')!;
    assertProblem(await confirm(s, flowId, 'bob', other.token), 404, 'confirm_flow_unknown');
    assertProblem(await confirm(s, flowId, 'bob'), 404, 'confirm_flow_unknown');
    assert.equal(await status(s, started.connection_id), 'pending');
    const ok = json<Confirmed>(await confirm(s, flowId, 'bob', agent.token));
    assert.equal(ok.status, 'active');

    // An agent whose grant no longer names the user (since the request) confirms nothing
    // (review, 2026-12-07: only the actor string was compared).
    const narrowed = await createAgentWithToken(s.broker, 'narrowed-agent', {
      allowed_providers: ['*'],
      allowed_workspaces: ['dave'],
    });
    const daves = await requestConnection(s, 'dave', { verify: true }, narrowed.token);
    const daveFlow = (await completeAs(s, daves.authUrl, 'dave-account')).searchParams.get('flow_id')!;
    const patched = await s.call({
      method: 'PATCH',
      url: '/admin/v1/agents/narrowed-agent',
      payload: { allowed_workspaces: ['erin'] },
    });
    assert.equal(patched.statusCode, 200, patched.body);
    assertProblem(await confirm(s, daveFlow, 'dave', narrowed.token), 404, 'confirm_flow_unknown');
    assert.equal(await status(s, daves.connection_id), 'pending');

    // Past the consent's deadline (10 minutes after the request): expired, still pending.
    const late = await requestConnection(s, 'carol');
    const lateFlow = (await completeAs(s, late.authUrl, 'carol-account')).searchParams.get('flow_id')!;
    s.clock += 11 * 60_000;
    try {
      assertProblem(await confirm(s, lateFlow, 'carol'), 410, 'confirm_flow_expired');
      // The pending connection's own deadline passed with it; the confirmation wrote nothing.
      assert.equal(await status(s, late.connection_id), 'expired');
      const row = await s.broker.container.connectionsStore.find(late.connection_id);
      assert.equal(row!.status, 'pending');
      assert.equal(row!.credentials, null);
      // Housekeeping revokes the unconfirmed grant at the provider and erases the held copy.
      const revocationsBefore = s.idp.counts.revocation;
      await s.broker.container.consent.deleteExpiredFlows(s.clock - 86_400_000);
      assert.ok(s.idp.counts.revocation > revocationsBefore, 'the unconfirmed grant was revoked');
      const left = await s.broker.container.db.kysely
        .selectFrom('consent_confirmations')
        .select('id')
        .where('connection_id', '=', late.connection_id)
        .execute();
      assert.deepEqual(left, []);
    } finally {
      s.clock -= 11 * 60_000;
    }
  });

  it('a static-credential capture is confirmed the same way before it activates', async () => {
    await s.call(
      { method: 'POST', url: '/providers', payload: { profile: { name: 'keyed', auth_type: 'api_key' } } },
      201,
    );
    const started = json<Started & { state: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: 'dave', provider_name: 'keyed', return_url: RETURN, verify: true },
        },
        200,
      ),
    );
    const captured = json<{ status: string; redirect_url: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/capture-credential',
          key: null,
          payload: { state: started.state, credentials: { api_key: 'key-1234567890' } },
        },
        200,
      ),
    );
    assert.equal(captured.status, 'pending');
    const verifier = new URL(captured.redirect_url);
    assert.equal(verifier.origin + verifier.pathname, VERIFIER);
    assert.equal(await status(s, started.connection_id), 'pending');
    const wrong = json<Confirmed>(await confirm(s, verifier.searchParams.get('flow_id')!, 'eve'));
    assert.deepEqual([wrong.status, wrong.error, wrong.provider_revoked], ['failed', 'user_mismatch', false]);
    assert.equal(await status(s, started.connection_id), 'failed');
  });

  it('a connect session with verify: true goes through the verifier and ends on its finish page', async () => {
    const created = json<{ id: string; url: string; providers: { id: string }[] }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/connect-sessions',
          payload: { user_id: 'frank', providers: ['idp-discovered'], return_url: RETURN, verify: true },
        },
        201,
      ),
    );
    const token = new URL(created.url).searchParams.get('token')!;
    const picked = await s.call(
      {
        method: 'GET',
        url: `/connect/session/pick?token=${token}&provider=${created.providers[0]!.id}`,
        key: null,
      },
      303,
    );
    const verifier = await completeAs(s, picked.headers.location as string, 'frank-account');
    assert.equal(verifier.origin + verifier.pathname, VERIFIER);
    const done = json<Confirmed>(await confirm(s, verifier.searchParams.get('flow_id')!, 'frank'));
    assert.equal(done.status, 'active');
    const finish = new URL(done.redirect_url!);
    assert.equal(finish.pathname, '/connect/finish');
    assert.equal(finish.searchParams.get('session'), created.id);
    const page = await s.call({ method: 'GET', url: finish.pathname + finish.search, key: null }, 200);
    assert.match(page.body, /Connected/);
  });
});

describe('consent confirmation is off unless a verifier is configured', () => {
  const s = new Scenario();
  before(() => s.start());
  after(() => s.close());

  it('verify: true is a 400 without a verifier, and nothing is created', async () => {
    const before = await s.broker.container.db.kysely.selectFrom('connections').select('id').execute();
    assertProblem(
      await s.call({
        method: 'POST',
        url: '/v1/request-connection',
        payload: { user_id: 'u', provider_name: 'idp-discovered', return_url: RETURN, verify: true },
      }),
      400,
      'verifier_not_configured',
    );
    assertProblem(
      await s.call({
        method: 'POST',
        url: '/v1/connect-sessions',
        payload: { user_id: 'u', return_url: RETURN, verify: true },
      }),
      400,
      'verifier_not_configured',
    );
    const after = await s.broker.container.db.kysely.selectFrom('connections').select('id').execute();
    assert.equal(after.length, before.length);
  });

  it('existing flows are unchanged (verify: false is accepted too)', async () => {
    assert.equal(await status(s, await s.connect('idp-discovered', 'old-client')), 'active');
    const started = await requestConnection(s, 'old-client-2', { verify: false });
    const back = await completeAs(s, started.authUrl, 'someone');
    assert.equal(back.searchParams.get('status'), 'success');
  });
});

describe('consent confirmation required by the operator', () => {
  const s = new Scenario();
  before(() =>
    s.start({ env: { NEXUS_CONNECT_VERIFIER_URL: VERIFIER, NEXUS_CONNECT_VERIFIER_REQUIRED: 'true' } }),
  );
  after(() => s.close());

  it('every consent goes through the verifier, and verify: false is refused', async () => {
    assertProblem(
      await s.call({
        method: 'POST',
        url: '/v1/request-connection',
        payload: { user_id: 'u', provider_name: 'idp-discovered', return_url: RETURN, verify: false },
      }),
      400,
      'verification_required',
    );
    const started = await requestConnection(s, 'gina', {});
    const verifier = await completeAs(s, started.authUrl, 'gina-account');
    assert.equal(verifier.origin + verifier.pathname, VERIFIER);
    assert.equal(
      json<Confirmed>(await confirm(s, verifier.searchParams.get('flow_id')!, 'gina')).status,
      'active',
    );
  });

  it('start-up refuses NEXUS_CONNECT_VERIFIER_REQUIRED without a URL, and plain http in production', () => {
    const env = { ...s.broker.env };
    delete env.NEXUS_CONNECT_VERIFIER_URL;
    assert.throws(
      () => loadConfig({ ...env, NEXUS_CONNECT_VERIFIER_REQUIRED: 'true' }),
      /NEXUS_CONNECT_VERIFIER_REQUIRED: needs NEXUS_CONNECT_VERIFIER_URL/,
    );
    assert.throws(
      () =>
        loadConfig({
          ...env,
          NEXUS_ENV: 'production',
          NEXUS_CONNECT_VERIFIER_URL: 'http://app.example.com/verify',
        }),
      /NEXUS_CONNECT_VERIFIER_URL: must use https in production/,
    );
  });
});
