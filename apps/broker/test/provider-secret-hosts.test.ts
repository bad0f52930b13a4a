/**
 * Security review (2026-12-07): a provider whose token URL's host is a connection parameter any
 * host name matches (the catalogue's Okta, Auth0 and GitLab entries did) let whoever requests a
 * connection choose the server the broker sends the provider's client secret to. Such a provider
 * is refused at registration; one stored before takes only its operator's default there. SQLite
 * and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DIALECT, json, startBroker, type TestBroker } from './harness.ts';

const RETURN = 'http://127.0.0.1:9/back';
const ANY_HOST = '^[a-z0-9][a-z0-9-]{0,62}(\\.[a-z0-9][a-z0-9-]{0,62})+$';
const PINNED = '^[a-z0-9][a-z0-9-]{0,62}\\.okta\\.com$';

const profile = (name: string, pattern: string) => ({
  name,
  client_id: 'the-client',
  client_secret: 'THE-REAL-CLIENT-SECRET',
  auth_url: 'https://{domain}/oauth2/v1/authorize',
  token_url: 'https://{domain}/oauth2/v1/token',
  params: {
    connection_parameters: {
      domain: { title: 'Okta domain', pattern, default: 'acme.okta.com', example: 'acme.okta.com' },
    },
  },
});

describe(`the host the client secret goes to is the operator's (${DIALECT})`, () => {
  let broker: TestBroker;
  const requestConnection = (provider: string, config?: Record<string, string>) =>
    broker.request({
      method: 'POST',
      url: '/v1/request-connection',
      payload: {
        user_id: 'alice',
        provider_name: provider,
        return_url: RETURN,
        ...(config ? { connection_config: config } : {}),
      },
    });

  before(async () => {
    broker = await startBroker();
  });
  after(async () => broker?.close());

  it('refuses a provider whose token URL host any requester value can name, and takes a pinned one', async () => {
    const loose = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: profile('loose-okta', ANY_HOST) },
    });
    assert.equal(loose.statusCode, 400, loose.body);
    assert.match(loose.body, /params\.connection_parameters\.domain\.pattern/);
    assert.match(loose.body, /where the client secret is sent/);
    const pinned = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: profile('pinned-okta', PINNED) },
    });
    assert.equal(pinned.statusCode, 201, pinned.body);
    const okta = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: { template: 'okta', client_id: 'c', client_secret: 's' } },
    });
    assert.equal(okta.statusCode, 201, `the catalogue's Okta entry: ${okta.body}`);
    const elsewhere = await requestConnection('okta', { domain: 'attacker.example' });
    assert.equal(elsewhere.statusCode, 400, elsewhere.body);
    assert.equal(json(elsewhere).error, 'invalid_connection_config');
  });

  it('a provider stored before the rule takes only the default there, never the requester’s host', async () => {
    const created = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: profile('stored-okta', PINNED) },
    });
    assert.equal(created.statusCode, 201, created.body);
    const { id } = json<{ id: string }>(created);
    // What an older broker accepted: the pattern loosened in the stored row.
    const row = await broker.container.db.kysely
      .selectFrom('providers')
      .select('profile')
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    const stored = JSON.parse(row.profile);
    stored.params.connection_parameters.domain.pattern = ANY_HOST;
    await broker.container.db.kysely
      .updateTable('providers')
      .set({ profile: JSON.stringify(stored) })
      .where('id', '=', id)
      .execute();
    const refused = await requestConnection('stored-okta', { domain: 'attacker.example' });
    assert.equal(refused.statusCode, 400, refused.body);
    assert.equal(json(refused).error, 'invalid_connection_config');
    assert.match(refused.body, /where its client secret is sent/);
    const byDefault = await requestConnection('stored-okta');
    assert.equal(byDefault.statusCode, 200, byDefault.body);
    assert.equal(new URL(json<{ authUrl: string }>(byDefault).authUrl).host, 'acme.okta.com');
  });
});
