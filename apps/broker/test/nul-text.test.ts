import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createAgentWithToken, DIALECT, json, startBroker, type TestBroker } from './harness.ts';

/**
 * A NUL character (U+0000) anywhere the broker reads text: refused with 400 invalid_request before
 * anything is read or written, the same on SQLite (which would store it) and PostgreSQL (which
 * refuses it in text, and used to end such requests in a 500). http/unstorable-text.ts.
 */
describe(`NUL characters in requests (${DIALECT})`, () => {
  let broker: TestBroker;
  const call = (options: Parameters<TestBroker['request']>[0]) => broker.request(options);
  const refusedForNul = (res: Awaited<ReturnType<typeof call>>, what: string) => {
    assert.equal(res.statusCode, 400, `${what}: ${res.body}`);
    assert.equal(json(res).error, 'invalid_request', what);
    assert.match(json<{ message: string }>(res).message, /NUL character/, what);
  };

  before(async () => {
    broker = await startBroker();
    const provider = await call({
      method: 'POST',
      url: '/providers',
      payload: { profile: { name: 'nul-keyed', auth_type: 'api_key' } },
    });
    assert.equal(provider.statusCode, 201, provider.body);
  });
  after(async () => {
    await broker.close();
  });

  it('in the URL: path or query, reads and writes, with or without a credential', async () => {
    refusedForNul(await call({ method: 'GET', url: '/api/v2/secrets?user_id=a%00b' }), 'list');
    refusedForNul(await call({ method: 'GET', url: '/api/v2/secrets/x?user_id=a%00b' }), 'read');
    refusedForNul(
      await call({
        method: 'POST',
        url: '/api/v2/secrets?user_id=a%00b',
        payload: { name: 'n', value: 'v' },
      }),
      'write',
    );
    refusedForNul(await call({ method: 'GET', url: '/admin/v1/agents/a%00b' }), 'agent by id');
    refusedForNul(await call({ method: 'DELETE', url: '/admin/v1/admin-keys/a%00b' }), 'admin key by id');
    refusedForNul(
      await call({ method: 'GET', url: '/connect/finish?session=a%00', key: null }),
      'public page',
    );
    // Nothing was written for that user.
    const listed = await call({ method: 'GET', url: '/api/v2/secrets?user_id=a' });
    assert.deepEqual(json(listed).secrets, []);
  });

  it('in a JSON body: refused whole, and nothing is created', async () => {
    const before = await broker.container.db.kysely
      .selectFrom('connections')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    const started = await call({
      method: 'POST',
      url: '/v1/request-connection',
      payload: {
        user_id: 'nul-user',
        provider_name: 'nul-keyed',
        return_url: 'http://localhost:3000/x\u0000y',
      },
    });
    refusedForNul(started, 'request-connection return_url');
    assert.deepEqual(json(started).details, [
      { path: 'body.return_url', message: 'contains a NUL character (U+0000)' },
    ]);
    refusedForNul(
      await call({
        method: 'POST',
        url: '/v1/connect-sessions',
        payload: { user_id: 'a\u0000b', return_url: 'http://localhost:3000/back' },
      }),
      'connect session user_id',
    );
    refusedForNul(
      await call({
        method: 'POST',
        url: '/admin/v1/webhooks',
        payload: { url: 'https://example.com/hook', description: 'x\u0000y' },
      }),
      'webhook description',
    );
    refusedForNul(
      await call({ method: 'POST', url: '/api/v2/secrets?user_id=nul-user', payload: { 'n\u0000': 1 } }),
      'a key',
    );
    const after = await broker.container.db.kysely
      .selectFrom('connections')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    assert.equal(Number(after.n), Number(before.n), 'no pending connection left behind');
  });

  it('an unpaired surrogate in a JSON body is refused as well; a pair (an emoji), escaped or not, is text', async () => {
    const lone = await call({
      method: 'POST',
      url: '/api/v2/secrets?user_id=nul-user',
      payload: { name: 'lone', value: 'v', description: 'half an emoji: \ud83d' },
    });
    assert.equal(lone.statusCode, 400, lone.body);
    assert.equal(json(lone).error, 'invalid_request');
    assert.match(json<{ message: string }>(lone).message, /unpaired UTF-16 surrogate/);
    assert.deepEqual(json(lone).details, [
      { path: 'body.description', message: 'contains an unpaired UTF-16 surrogate' },
    ]);
    const missing = await call({ method: 'GET', url: '/api/v2/secrets/lone?user_id=nul-user' });
    assert.equal(missing.statusCode, 404, 'nothing stored');
    const pair = await call({
      method: 'POST',
      url: '/api/v2/secrets?user_id=nul-user',
      headers: { 'content-type': 'application/json' },
      payload: '{"name":"pair","value":"\\ud83d\\ude00 and \u{1F600}"}',
    });
    assert.equal(pair.statusCode, 201, pair.body);
    const read = await call({ method: 'GET', url: '/api/v2/secrets/pair?user_id=nul-user' });
    assert.equal(json(read).value, '\u{1F600} and \u{1F600}');
  });

  it('an escaped backslash before "u0000" is text, not a NUL', async () => {
    const res = await call({
      method: 'POST',
      url: '/api/v2/secrets?user_id=nul-user',
      payload: { name: 'escaped', value: 'C:\\u0000\\path', description: 'a \\u0000 b' },
    });
    assert.equal(res.statusCode, 201, res.body);
    const read = await call({ method: 'GET', url: '/api/v2/secrets/escaped?user_id=nul-user' });
    assert.equal(json(read).value, 'C:\\u0000\\path');
  });

  it('in a form body, and in the issuer of a user token decoded from one', async () => {
    const form = (fields: Record<string, string>) =>
      call({
        method: 'POST',
        url: '/oauth/token',
        key: null,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams(fields).toString(),
      });
    refusedForNul(
      await form({ grant_type: 'client_credentials', client_id: 'a\u0000b', client_secret: 'x' }),
      'client_id',
    );
    // The issuer of an unverified user token is checked before any database lookup: an unknown
    // issuer on both databases (PostgreSQL would refuse to look a NUL up).
    const { token: at } = await createAgentWithToken(broker, 'nul-obo', { allowed_workspaces: ['*'] });
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const forged = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ iss: 'https://idp.example/\u0000x', sub: 'u' })}.c2ln`;
    const exchanged = await call({
      method: 'POST',
      url: '/v1/agent-sessions/obo',
      key: null,
      headers: { authorization: `Bearer ${at}` },
      payload: { user_token: forged, scopes: ['x'] },
    });
    assert.equal(exchanged.statusCode, 400, exchanged.body);
    assert.equal(json(exchanged).error, 'invalid_grant');
    assert.deepEqual(json(exchanged).details, { gate: 'user_token', reason: 'unknown_issuer' });
  });
});
