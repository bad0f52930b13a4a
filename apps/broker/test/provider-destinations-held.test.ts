/**
 * "No admin path to a stored secret" while a consent's tokens are held for its confirmation
 * (`verify: true`): they are stored credentials too, which become a connection's or are revoked at
 * the provider with the profile as it is then, so the provider's destinations are locked as if a
 * connection held them. Runs on SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { json } from './harness.ts';
import { REDIRECT, RETURN, Scenario } from './oauth-scenario.ts';

describe('provider destinations while tokens are held for a confirmation', () => {
  const s = new Scenario();
  before(() => s.start({ env: { NEXUS_CONNECT_VERIFIER_URL: 'http://localhost:3000/verify-user' } }));
  after(() => s.close());

  it('refuses to move the token and revocation endpoints, even with a new client secret', async () => {
    const provider = json<{ id: string }>(
      await s.call({ method: 'GET', url: '/providers/by-name/idp-basic' }, 200),
    );
    const started = json<{ authUrl: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: 'alice', provider_name: 'idp-basic', return_url: RETURN, verify: true },
        },
        200,
      ),
    );
    const callback = await s.idp.consent(started.authUrl, 'alice-account');
    assert.equal(callback.origin + callback.pathname, REDIRECT);
    const held = await s.call({ method: 'GET', url: callback.pathname + callback.search, key: null }, 302);
    assert.ok(new URL(String(held.headers.location)).searchParams.get('flow_id'), 'the tokens are held');

    const moved = await s.call({
      method: 'PATCH',
      url: `/providers/${provider.id}`,
      payload: {
        profile: {
          token_url: 'https://elsewhere.example.com/token',
          params: { revocation_endpoint: 'https://elsewhere.example.com/revoke' },
          client_secret: 'a-secret-of-my-own',
        },
      },
    });
    assert.equal(moved.statusCode, 409, moved.body);
    assert.equal(json<{ error: string }>(moved).error, 'provider_destination_locked');
  });
});
