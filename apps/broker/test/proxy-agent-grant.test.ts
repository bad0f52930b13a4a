/**
 * The credential proxy does not tell an agent which providers exist outside its grant: a route of
 * such a provider is answered exactly like a route that does not exist, with or without a
 * connection named. Admin keys still see every route. Runs on SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { headerKeyedConnection } from './capture-helpers.ts';
import { createAgentWithToken, json, startBroker, type TestBroker } from './harness.ts';

describe('the credential proxy and an agent grant', () => {
  let broker: TestBroker;
  let connection: string;
  let agentToken: string;

  before(async () => {
    broker = await startBroker();
    connection = await headerKeyedConnection(
      broker,
      'crm',
      'https://crm.example.com',
      { type: 'header', config: { header_name: 'X-Api-Key' } },
      'alice',
    );
    const other = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: { name: 'secretcorp', auth_type: 'api_key', api_base_url: 'https://secretcorp.example.com' },
      },
    });
    assert.equal(other.statusCode, 201, other.body);
    agentToken = (
      await createAgentWithToken(broker, 'crm-only', {
        allowed_scopes: [],
        allowed_providers: ['crm'],
        allowed_workspaces: ['alice'],
      })
    ).token;
  });
  after(() => broker.close());

  const asAgent = async (route: string, headers: Record<string, string>) => {
    const res = await broker.request({
      method: 'GET',
      url: `/proxy/${route}/x`,
      key: null,
      headers: { ...headers, authorization: `Bearer ${agentToken}` },
    });
    return { status: res.statusCode, error: json<{ error: string }>(res).error };
  };

  it('answers a provider outside the grant exactly like one that does not exist', async () => {
    const ways: Record<string, string>[] = [
      { 'x-nexus-user-id': 'alice' },
      { 'x-nexus-connection-id': connection },
    ];
    for (const headers of ways) {
      const outside = await asAgent('secretcorp', headers);
      const missing = await asAgent('nosuchthing', headers);
      assert.deepEqual(outside, missing, JSON.stringify(headers));
      assert.deepEqual(missing, { status: 404, error: 'unknown_route' });
    }
  });

  it('an admin key still reaches every route', async () => {
    const res = await broker.request({
      method: 'GET',
      url: '/proxy/secretcorp/x',
      headers: { 'x-nexus-user-id': 'alice' },
    });
    assert.equal(res.statusCode, 404);
    assert.equal(
      json<{ error: string }>(res).error,
      'connection_not_found',
      'the route exists; the connection does not',
    );
  });
});
