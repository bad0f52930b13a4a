/**
 * Consent bound to the person who asked (decision 0017) fails closed: a consent started with
 * `verify: true` whose callback reaches a broker that no longer has a verifier page (the operator
 * removed NEXUS_CONNECT_VERIFIER_URL, and a replica restarted without it, while the user signed
 * in) never activates: the connection fails with `verifier_unavailable` and the grant is revoked
 * at the provider. Against a real OpenID provider (oidc-provider), on SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { json, startBroker, type TestBroker } from './harness.ts';
import { REDIRECT, RETURN, Scenario } from './oauth-scenario.ts';

describe('a consent to be confirmed, when the verifier is removed mid-flow', () => {
  const s = new Scenario();
  let without: TestBroker;
  before(async () => {
    await s.start({ env: { NEXUS_CONNECT_VERIFIER_URL: 'http://localhost:3000/verify-user' } });
    // The same database and keys, without the verifier.
    without = await startBroker({
      database: s.broker.db,
      env: { ...s.broker.env, NEXUS_CONNECT_VERIFIER_URL: '' },
      now: () => s.clock,
    });
  });
  after(async () => {
    await without.close();
    await s.close();
  });

  it('fails the connection with verifier_unavailable and revokes the grant; nothing is kept', async () => {
    const started = json<{ authUrl: string; connection_id: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: 'alice', provider_name: 'idp-discovered', return_url: RETURN, verify: true },
        },
        200,
      ),
    );
    const revocations = s.idp.counts.revocation;
    const callback = await s.idp.consent(started.authUrl);
    assert.equal(callback.origin + callback.pathname, REDIRECT);
    const res = await without.request({ method: 'GET', url: callback.pathname + callback.search, key: null });
    assert.equal(res.statusCode, 302, res.body);
    const back = new URL(res.headers.location as string);
    assert.equal(back.origin + back.pathname, RETURN, 'back to the app, not activated');
    assert.equal(back.searchParams.get('status'), 'failed');
    assert.equal(back.searchParams.get('error'), 'verifier_unavailable');
    const row = await s.broker.container.db.kysely
      .selectFrom('connections')
      .select(['status', 'last_error', 'credentials'])
      .where('id', '=', started.connection_id)
      .executeTakeFirstOrThrow();
    assert.equal(row.status, 'failed');
    assert.equal(row.credentials, null, 'no credentials stored');
    assert.ok(s.idp.counts.revocation > revocations, 'the grant was revoked at the provider');
    const token = await s.call({ method: 'GET', url: `/v1/token/${started.connection_id}` });
    assert.notEqual(token.statusCode, 200);
  });
});
