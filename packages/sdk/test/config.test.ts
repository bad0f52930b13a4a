/** Configuration: argument, then environment, then default; a missing credential fails at construction. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import { ConfigurationError, DEFAULT_BASE_URL, NexusAdmin, NexusClient } from '../src/index.ts';

describe('NexusClient configuration', () => {
  test('without any credential the constructor fails and names both ways to set one', () => {
    assert.throws(
      () => new NexusClient({ env: {} }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigurationError);
        assert.match(error.message, /clientId, clientSecret/);
        assert.match(error.message, /apiKey/);
        assert.match(error.message, /NEXUS_CLIENT_ID and NEXUS_CLIENT_SECRET/);
        assert.match(error.message, /NEXUS_API_KEY/);
        return true;
      },
    );
  });

  test('NexusAdmin without a key names the option and NEXUS_API_KEY', () => {
    assert.throws(() => new NexusAdmin({ env: {} }), /pass \{ apiKey \}.*NEXUS_API_KEY/);
  });

  test('a client id without its secret is refused, whichever way it came', () => {
    assert.throws(
      () => new NexusClient({ clientId: 'a', env: {} }),
      /clientSecret option is set but|clientSecret/,
    );
    assert.throws(() => new NexusClient({ env: { NEXUS_CLIENT_ID: 'a' } }), /NEXUS_CLIENT_SECRET/);
    assert.throws(() => new NexusClient({ env: { NEXUS_CLIENT_SECRET: 'a' } }), /NEXUS_CLIENT_ID/);
  });

  test('the URL comes from the argument, else NEXUS_URL, else the default', () => {
    const env = { NEXUS_URL: 'http://env.example:9000/', NEXUS_API_KEY: 'k' };
    assert.equal(new NexusClient({ env, baseUrl: 'http://arg.example:1/' }).baseUrl, 'http://arg.example:1');
    assert.equal(new NexusClient({ env }).baseUrl, 'http://env.example:9000');
    assert.equal(new NexusClient({ env: { NEXUS_API_KEY: 'k' } }).baseUrl, DEFAULT_BASE_URL);
    assert.throws(() => new NexusClient({ env, baseUrl: 'ftp://x' }), ConfigurationError);
  });

  test('credentials in arguments win over the environment; agent credentials over an API key', async () => {
    const seen: Headers[] = [];
    const fakeFetch = async (_url: string | URL | Request, init?: RequestInit) => {
      seen.push(new Headers(init?.headers));
      const body = String(init?.body ?? '');
      if (body.includes('grant_type=client_credentials'))
        return Response.json({
          access_token: `tok-for-${new URLSearchParams(body).get('client_id')}`,
          token_type: 'Bearer',
          expires_in: 3600,
          scope: '',
        });
      return Response.json({ connection_id: 'c', status: 'active' });
    };
    const env = { NEXUS_CLIENT_ID: 'env-agent', NEXUS_CLIENT_SECRET: 'env-secret', NEXUS_API_KEY: 'env-key' };

    await new NexusClient({ env, apiKey: 'arg-key', fetch: fakeFetch }).checkConnection('c');
    assert.equal(seen.at(-1)!.get('x-api-key'), 'arg-key');
    assert.equal(seen.at(-1)!.get('authorization'), null);

    await new NexusClient({
      env,
      clientId: 'arg-agent',
      clientSecret: 's',
      fetch: fakeFetch,
    }).checkConnection('c');
    assert.equal(seen.at(-1)!.get('authorization'), 'Bearer tok-for-arg-agent');

    await new NexusClient({ env, fetch: fakeFetch }).checkConnection('c');
    assert.equal(seen.at(-1)!.get('authorization'), 'Bearer tok-for-env-agent');

    await new NexusClient({ env: { NEXUS_API_KEY: 'env-key' }, fetch: fakeFetch }).checkConnection('c');
    assert.equal(seen.at(-1)!.get('x-api-key'), 'env-key');
  });

  test('secrets never show in inspection or JSON of a client', () => {
    const client = new NexusClient({ env: {}, clientId: 'agent-1', clientSecret: 'super-secret-value' });
    const admin = new NexusAdmin({ env: {}, apiKey: 'admin-key-value' });
    for (const text of [
      inspect(client, { depth: 5 }),
      JSON.stringify(client),
      inspect(admin, { depth: 5 }),
    ]) {
      assert.doesNotMatch(text, /super-secret-value|admin-key-value/);
    }
    assert.match(JSON.stringify(client), /agent-1/);
  });
});
