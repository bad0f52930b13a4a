import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PassThroughClient } from 'google-auth-library';
import { loadConfig } from '../src/config/load.ts';
import { buildContainer } from '../src/container.ts';
import { createGcpSecretManagerBackend } from '../src/modules/secrets/gcp-secret-manager.backend.ts';
import { createUserSecrets } from '../src/modules/user-secrets/user-secrets.service.ts';
import { createUserSecretsStore } from '../src/modules/user-secrets/user-secrets.store.ts';
import { createAgentWithToken, json, newKeyBase64, startBroker, type TestBroker } from './harness.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';
import { FakeGcpSecretManager } from './secret-backends/gcp-secret-manager.fake.ts';
import { FakeVault } from './secret-backends/vault-kv2.fake.ts';

/**
 * User secrets: (user, zone, name), versions, soft delete/restore, enable/disable, the
 * `nexus-secret:NAME` resolver, audit without values, and who may read (an operator naming the
 * user; an agent while acting for that user, with an on-behalf-of session granted secrets:read, or
 * secrets:write to change them; or with a grant for that name, which only reads).
 */

const AUDIENCE = 'https://nexus.example.test/secrets';
const VALUE = 'sk_live_user_secret_value_91f3';

describe('user secrets', () => {
  let broker: TestBroker;
  let idp: OidcFixture;
  const call = (options: Parameters<TestBroker['request']>[0]) => broker.request(options);
  const put = (user: string, body: Record<string, unknown>, zone?: string) =>
    call({
      method: 'POST',
      url: `/api/v2/secrets?user_id=${user}${zone ? `&zone=${zone}` : ''}`,
      payload: body,
    });
  const get = (user: string, name: string, extra = '') =>
    call({ method: 'GET', url: `/api/v2/secrets/${name}?user_id=${user}${extra}` });

  before(async () => {
    idp = await startOidcProvider();
    broker = await startBroker();
  });
  after(async () => {
    await broker.close();
    await idp.close();
  });

  it('keeps versions, reads the current or a given one, and never lists a value', async () => {
    assert.equal(
      (await put('alice', { name: 'stripe', value: 'v1-secret', description: 'payments' })).statusCode,
      201,
    );
    const second = await put('alice', { name: 'stripe', value: VALUE });
    assert.equal(second.statusCode, 201, second.body);
    assert.equal(json(second).version, 2);
    assert.equal(json(await get('alice', 'stripe')).value, VALUE);
    assert.equal(json(await get('alice', 'stripe', '&version=1')).value, 'v1-secret');
    assert.equal((await get('alice', 'stripe', '&version=3')).statusCode, 404);
    const versions = json<{ versions: { version: number; created_by: string }[] }>(
      await call({ method: 'GET', url: '/api/v2/secrets/stripe/versions?user_id=alice' }),
    );
    assert.deepEqual(
      versions.versions.map((v) => v.version),
      [2, 1],
    );
    const list = await call({ method: 'GET', url: '/api/v2/secrets?user_id=alice' });
    assert.equal(
      json<{ secrets: { name: string; current_version: number }[] }>(list).secrets[0]?.current_version,
      2,
    );
    const audit = await call({ method: 'GET', url: '/audit?limit=500' });
    for (const text of [list.body, audit.body, ...broker.logs]) {
      assert.ok(!text.includes(VALUE), 'no value in lists, audit rows or logs');
      assert.ok(!text.includes('v1-secret'));
    }
    assert.ok(audit.body.includes('"event_type":"key_accessed"'), 'reads are audited');
  });

  it('pages secrets by name in byte order and versions newest first, past 1000 and with any limit', async () => {
    // Lists stopped at 1000 with no way to the rest (2026-12-08).
    const names = ['b-2', 'B', 'a.1', 'a_1', 'a-1', 'A9', 'z', '0'];
    for (const name of names) assert.equal((await put('pager', { name, value: 'x' })).statusCode, 201);
    const seen: string[] = [];
    let url = '/api/v2/secrets?user_id=pager&limit=3';
    for (let pages = 0; pages < 10; pages++) {
      const page = json<{ secrets: { name: string }[]; next_cursor: string | null }>(
        await call({ method: 'GET', url }),
      );
      assert.ok(page.secrets.length <= 3);
      seen.push(...page.secrets.map((s) => s.name));
      if (page.next_cursor === null) break;
      url = `/api/v2/secrets?user_id=pager&limit=3&cursor=${encodeURIComponent(page.next_cursor)}`;
    }
    assert.deepEqual(seen, [...names].sort(), 'every name once, in byte order, on both databases');
    const whole = json<{ next_cursor: string | null }>(
      await call({ method: 'GET', url: '/api/v2/secrets?user_id=pager' }),
    );
    assert.equal(whole.next_cursor, null, 'the default page (1000) holds them all');

    for (let i = 2; i <= 5; i++) await put('pager', { name: 'z', value: `v${i}` });
    const versions: number[] = [];
    let cursor = '';
    for (let pages = 0; pages < 10; pages++) {
      const page = json<{ versions: { version: number }[]; next_cursor: string | null }>(
        await call({
          method: 'GET',
          url: `/admin/v1/user-secrets/z/versions?user_id=pager&limit=2${cursor}`,
        }),
      );
      versions.push(...page.versions.map((v) => v.version));
      if (page.next_cursor === null) break;
      cursor = `&cursor=${page.next_cursor}`;
    }
    assert.deepEqual(versions, [5, 4, 3, 2, 1]);
    for (const bad of ['limit=0', 'limit=1001', 'cursor=a%20b', 'cursor=..%2F'])
      assert.equal(
        (await call({ method: 'GET', url: `/api/v2/secrets?user_id=pager&${bad}` })).statusCode,
        400,
        bad,
      );
    // 9999999999 is past PostgreSQL's integer: refused before it reaches a query, never a 500.
    for (const bad of ['cursor=0', 'cursor=x', 'cursor=-1', 'cursor=9999999999'])
      assert.equal(
        (await call({ method: 'GET', url: `/api/v2/secrets/z/versions?user_id=pager&${bad}` })).statusCode,
        400,
        bad,
      );
  });

  it('isolates users and zones: another user or zone sees nothing', async () => {
    await put('alice', { name: 'zoned', value: 'in-prod' }, 'prod');
    assert.equal((await get('alice', 'zoned')).statusCode, 404, 'default zone');
    assert.equal(json(await get('alice', 'zoned', '&zone=prod')).value, 'in-prod');
    assert.equal((await get('bob', 'zoned', '&zone=prod')).statusCode, 404, 'another user');
    assert.equal((await get('bob', 'stripe')).statusCode, 404);
    assert.equal(
      (await call({ method: 'GET', url: '/api/v2/secrets/stripe' })).statusCode,
      400,
      'operators name the user',
    );
  });

  it('soft-deletes and restores, disables and enables', async () => {
    await put('carol', { name: 'temp', value: 'x-1' });
    assert.equal(
      (await call({ method: 'DELETE', url: '/api/v2/secrets/temp?user_id=carol' })).statusCode,
      200,
    );
    assert.equal((await get('carol', 'temp')).statusCode, 404);
    assert.equal(
      (await put('carol', { name: 'temp', value: 'x-2' })).statusCode,
      409,
      'restore before writing',
    );
    const restored = await call({ method: 'POST', url: '/api/v2/secrets/temp/restore?user_id=carol' });
    assert.equal(restored.statusCode, 200, restored.body);
    assert.equal(json(await get('carol', 'temp')).value, 'x-1');
    await call({ method: 'POST', url: '/api/v2/secrets/temp/disable?user_id=carol' });
    const disabled = await get('carol', 'temp');
    assert.equal(disabled.statusCode, 409);
    assert.equal(json(disabled).error, 'user_secret_disabled');
    await call({ method: 'POST', url: '/api/v2/secrets/temp/enable?user_id=carol' });
    assert.equal((await get('carol', 'temp')).statusCode, 200);
  });

  it('refuses bad names, sizes and fields, changing nothing', async () => {
    for (const body of [
      { name: 'has space', value: 'v' },
      { name: 'x'.repeat(129), value: 'v' },
      { name: 'ok', value: '' },
      { name: 'ok', value: 'v'.repeat(65537) },
      { name: 'ok', value: 'v', colour: 'red' },
    ]) {
      const res = await put('dave', body);
      assert.equal(res.statusCode, 400, res.body);
    }
    assert.equal((await put('dave', { name: 'ok', value: 'v' }, 'Bad Zone')).statusCode, 400);
    const list = json<{ secrets: unknown[] }>(
      await call({ method: 'GET', url: '/api/v2/secrets?user_id=dave' }),
    );
    assert.deepEqual(list.secrets, []);
  });

  it('resolves references in nested objects in one round trip, and names what it cannot', async () => {
    await put('erin', { name: 'db-password', value: 'hunter2' });
    await put('erin', { name: 'api-key', value: 'ak-123' });
    await put('erin', { name: 'off', value: 'nope' });
    await call({ method: 'POST', url: '/api/v2/secrets/off/disable?user_id=erin' });
    const config = {
      db: { url: 'postgres://db', password: 'nexus-secret:db-password' },
      keys: ['nexus-secret:api-key', 'literal', { nested: 'nexus-secret:api-key' }],
      note: 'mentions nexus-secret:db-password but is not a reference',
    };
    const ok = await call({
      method: 'POST',
      url: '/api/v2/secrets/resolve?user_id=erin',
      payload: { config },
    });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.deepEqual(json(ok).config, {
      db: { url: 'postgres://db', password: 'hunter2' },
      keys: ['ak-123', 'literal', { nested: 'ak-123' }],
      note: 'mentions nexus-secret:db-password but is not a reference',
    });
    const missing = await call({
      method: 'POST',
      url: '/api/v2/secrets/resolve?user_id=erin',
      payload: { config: { a: 'nexus-secret:nowhere', b: 'nexus-secret:off', c: 'nexus-secret:api-key' } },
    });
    assert.equal(missing.statusCode, 422);
    assert.deepEqual(json(missing).details, {
      unresolved: [
        { name: 'nowhere', reason: 'not_found' },
        { name: 'off', reason: 'disabled' },
      ],
    });
    const lenient = await call({
      method: 'POST',
      url: '/api/v2/secrets/resolve?user_id=erin',
      payload: { config: { a: 'nexus-secret:nowhere', c: 'nexus-secret:api-key' }, leave_unresolved: true },
    });
    assert.deepEqual(json(lenient).config, { a: 'nexus-secret:nowhere', c: 'ak-123' });
  });

  it("lets an agent read a user's secrets only while acting for that user", async () => {
    await put('alice', { name: 'agent-visible', value: 'for-alice' });
    await put('bob', { name: 'agent-visible', value: 'for-bob' });
    await call({
      method: 'POST',
      url: '/admin/v1/trusted-issuers',
      payload: { issuer: idp.issuer, use_discovery: true, audience: AUDIENCE },
    });
    await call({ method: 'POST', url: '/admin/v1/scopes', payload: { name: 'secrets:read' } });
    const { token: at } = await createAgentWithToken(broker, 'secret-reader', {
      allowed_scopes: ['secrets:read'],
      allowed_workspaces: ['*'],
    });
    const userToken = await idp.issueUserToken({
      resource: AUDIENCE,
      accountId: 'alice',
      claims: { permissions: ['secrets:read'] },
    });
    const session = json<{ session_token: string }>(
      await call({
        method: 'POST',
        url: '/v1/agent-sessions/obo',
        key: null,
        headers: { authorization: `Bearer ${at}` },
        payload: { user_token: userToken, scopes: ['secrets:read'] },
      }),
    );
    const asAgent = (url: string, headers: Record<string, string> = {}) =>
      call({ method: 'GET', url, key: null, headers: { authorization: `Bearer ${at}`, ...headers } });
    const withSession = { 'x-nexus-session': session.session_token };
    const mine = await asAgent('/api/v2/secrets/agent-visible', withSession);
    assert.equal(mine.statusCode, 200, mine.body);
    assert.equal(json(mine).value, 'for-alice');
    assert.equal((await asAgent('/api/v2/secrets/agent-visible?user_id=bob', withSession)).statusCode, 404);
    assert.equal((await asAgent('/api/v2/secrets/agent-visible')).statusCode, 404, 'no session, no secrets');
    const audit = await call({ method: 'GET', url: '/audit?limit=500' });
    assert.ok(
      json<{ events: { event_type: string; actor: string }[] }>(audit).events.some(
        (e) => e.event_type === 'key_accessed' && e.actor === 'agent:secret-reader',
      ),
    );
  });

  it("needs secrets:read in the session to read a user's secrets, secrets:write to change them", async () => {
    await put('ivy', { name: 'payments', value: 'ivy-original' });
    // Set up here as in the test above (a repeat answers 409, which changes nothing).
    await call({
      method: 'POST',
      url: '/admin/v1/trusted-issuers',
      payload: { issuer: idp.issuer, use_discovery: true, audience: AUDIENCE },
    });
    for (const name of ['secrets:read', 'secrets:write', 'calendar:read'])
      await call({ method: 'POST', url: '/admin/v1/scopes', payload: { name } });
    const { token: at } = await createAgentWithToken(broker, 'scoped-secrets', {
      allowed_scopes: ['secrets:read', 'secrets:write', 'calendar:read'],
      allowed_workspaces: ['*'],
    });
    const userToken = await idp.issueUserToken({
      resource: AUDIENCE,
      accountId: 'ivy',
      claims: { permissions: ['secrets:read', 'secrets:write', 'calendar:read'] },
    });
    const session = async (scopes: string[]) => {
      const opened = await call({
        method: 'POST',
        url: '/v1/agent-sessions/obo',
        key: null,
        headers: { authorization: `Bearer ${at}` },
        payload: { user_token: userToken, scopes },
      });
      assert.equal(opened.statusCode, 201, opened.body);
      return json<{ session_token: string }>(opened).session_token;
    };
    const asAgent = (token: string, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
      call({
        method,
        url,
        key: null,
        headers: { authorization: `Bearer ${at}`, 'x-nexus-session': token },
        ...(payload === undefined ? {} : { payload }),
      });
    const refused = (res: Awaited<ReturnType<typeof call>>, scope: string, what: string) => {
      assert.equal(res.statusCode, 403, `${what}: ${res.body}`);
      assert.equal(json(res).error, 'user_secret_scope_missing', what);
      assert.match(json<{ message: string }>(res).message, new RegExp(scope), what);
    };
    const writes = (token: string) =>
      [
        [
          'POST /api/v2/secrets',
          () => asAgent(token, 'POST', '/api/v2/secrets', { name: 'payments', value: 'agent-made' }),
        ],
        ['DELETE', () => asAgent(token, 'DELETE', '/api/v2/secrets/payments')],
        ['disable', () => asAgent(token, 'POST', '/api/v2/secrets/payments/disable')],
        ['restore', () => asAgent(token, 'POST', '/api/v2/secrets/payments/restore')],
      ] as const;

    // A session for something else reaches no secret, by any route.
    const calendar = await session(['calendar:read']);
    refused(await asAgent(calendar, 'GET', '/api/v2/secrets/payments'), 'secrets:read', 'read');
    refused(await asAgent(calendar, 'GET', '/api/v2/secrets'), 'secrets:read', 'list');
    refused(await asAgent(calendar, 'GET', '/api/v2/secrets/payments/versions'), 'secrets:read', 'versions');
    refused(
      await asAgent(calendar, 'POST', '/api/v2/secrets/resolve', { config: { a: 'nexus-secret:payments' } }),
      'secrets:read',
      'resolve',
    );
    for (const [what, send] of writes(calendar)) refused(await send(), 'secrets:write', what);

    // secrets:read reads, and changes nothing.
    const reader = await session(['secrets:read']);
    const read = await asAgent(reader, 'GET', '/api/v2/secrets/payments');
    assert.equal(read.statusCode, 200, read.body);
    assert.equal(json(read).value, 'ivy-original');
    for (const [what, send] of writes(reader)) refused(await send(), 'secrets:write', what);
    const after = await get('ivy', 'payments');
    assert.equal(after.statusCode, 200, 'still there, still enabled');
    assert.equal(json(after).value, 'ivy-original');
    assert.equal(json(after).version, 1);

    // secrets:write changes them.
    const writer = await session(['secrets:read', 'secrets:write']);
    const written = await asAgent(writer, 'POST', '/api/v2/secrets', {
      name: 'payments',
      value: 'agent-made',
    });
    assert.equal(written.statusCode, 201, written.body);
    assert.equal(json(await get('ivy', 'payments')).value, 'agent-made');
    assert.equal((await asAgent(writer, 'POST', '/api/v2/secrets/payments/disable')).statusCode, 200);
    assert.equal((await get('ivy', 'payments')).statusCode, 409, 'disabled by the agent');
  });

  it('lets an agent read exactly the secrets granted to it by name, nothing else', async () => {
    await put('gina', { name: 'granted', value: 'g-1' });
    await put('gina', { name: 'other', value: 'o-1' });
    await put('hank', { name: 'granted', value: 'h-1' });
    const { token: at } = await createAgentWithToken(broker, 'granted-reader', {
      allowed_secrets: ['gina/default/granted'],
    });
    const read = (url: string) =>
      call({ method: 'GET', url, key: null, headers: { authorization: `Bearer ${at}` } });
    const ok = await read('/api/v2/secrets/granted?user_id=gina');
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(json(ok).value, 'g-1');
    for (const url of [
      '/api/v2/secrets/other?user_id=gina',
      '/api/v2/secrets/granted?user_id=hank',
      '/api/v2/secrets/granted?user_id=gina&zone=prod',
      '/api/v2/secrets?user_id=gina',
    ])
      assert.equal((await read(url)).statusCode, 404, url);

    // The resolver takes the same grants: every name referred to must be granted.
    const resolve = (user: string, config: unknown) =>
      call({
        method: 'POST',
        url: `/api/v2/secrets/resolve?user_id=${user}`,
        key: null,
        headers: { authorization: `Bearer ${at}` },
        payload: { config },
      });
    const resolved = await resolve('gina', {
      db: { password: 'nexus-secret:granted' },
      list: ['nexus-secret:granted'],
    });
    assert.equal(resolved.statusCode, 200, resolved.body);
    assert.deepEqual(json(resolved).config, { db: { password: 'g-1' }, list: ['g-1'] });
    for (const [user, config] of [
      ['gina', { a: 'nexus-secret:granted', b: 'nexus-secret:other' }],
      ['hank', { a: 'nexus-secret:granted' }],
      ['gina', { nothing: 'to resolve' }],
    ] as const)
      assert.equal((await resolve(user, config)).statusCode, 404, JSON.stringify([user, config]));
    // A grant by name reads; it never changes the secret.
    for (const [method, url] of [
      ['DELETE', '/api/v2/secrets/granted?user_id=gina'],
      ['POST', '/api/v2/secrets/granted/disable?user_id=gina'],
    ] as const)
      assert.equal(
        (await call({ method, url, key: null, headers: { authorization: `Bearer ${at}` } })).statusCode,
        404,
        `${method} ${url}`,
      );
    const overwrite = await call({
      method: 'POST',
      url: '/api/v2/secrets?user_id=gina',
      key: null,
      headers: { authorization: `Bearer ${at}` },
      payload: { name: 'granted', value: 'overwritten' },
    });
    assert.equal(overwrite.statusCode, 404, overwrite.body);
    assert.equal(json(await get('gina', 'granted')).value, 'g-1');
    const bad = await call({
      method: 'PATCH',
      url: '/admin/v1/agents/granted-reader',
      payload: { allowed_secrets: ['no-slashes'] },
    });
    assert.equal(bad.statusCode, 400);
  });

  it('gives the version number back when the backend refuses a write, losing nothing', async () => {
    await put('kim', { name: 'flaky', value: 'kept' });
    let fail = true;
    const backend = broker.container.secrets;
    const flaky = createUserSecrets({
      store: createUserSecretsStore(broker.container.db),
      backend: {
        ...backend,
        put: async (path: string, value: Uint8Array) => {
          if (fail) throw new Error('backend down');
          return backend.put(path, value);
        },
      },
      ring: broker.container.keys.userSecretsRing,
      audit: broker.container.audit,
    });
    const ctx = { actor: 'test' };
    const owner = { userId: 'kim', zone: 'default' };
    await assert.rejects(flaky.put(ctx, owner, { name: 'flaky', value: 'lost' }), /backend down/);
    assert.equal(json(await get('kim', 'flaky')).value, 'kept', 'the current version still reads');
    fail = false;
    assert.equal((await flaky.put(ctx, owner, { name: 'flaky', value: 'next' })).version, 2);
  });

  it('reads the previous version while a new one is being written, and after its writer died', async () => {
    // Review (2026-12-07): a put claims version N+1 before the value is stored; a read in between
    // answered 404, and so did every read after a writer that died there.
    await put('lee', { name: 'rotating', value: 'v1' });
    const backend = broker.container.secrets;
    const { promise: released, resolve: release } = Promise.withResolvers<void>();
    let writing!: () => void;
    const started = new Promise<void>((done) => {
      writing = done;
    });
    const slow = createUserSecrets({
      store: createUserSecretsStore(broker.container.db),
      backend: {
        ...backend,
        put: async (path: string, value: Uint8Array) => {
          writing();
          await released;
          return backend.put(path, value);
        },
      },
      ring: broker.container.keys.userSecretsRing,
      audit: broker.container.audit,
    });
    const owner = { userId: 'lee', zone: 'default' };
    const pending = slow.put({ actor: 'test' }, owner, { name: 'rotating', value: 'v2' });
    await started;
    const during = await get('lee', 'rotating');
    assert.equal(during.statusCode, 200, during.body);
    assert.deepEqual([json(during).value, json(during).version], ['v1', 1]);
    const resolved = await call({
      method: 'POST',
      url: '/api/v2/secrets/resolve?user_id=lee',
      payload: { config: { password: 'nexus-secret:rotating' } },
    });
    assert.equal(resolved.statusCode, 200, resolved.body);
    assert.equal(json<{ config: { password: string } }>(resolved).config.password, 'v1');
    release();
    assert.equal((await pending).version, 2);
    assert.deepEqual(
      [json(await get('lee', 'rotating')).value, json(await get('lee', 'rotating')).version],
      ['v2', 2],
    );
    // A writer that died after claiming version 3 and before storing it.
    const store = createUserSecretsStore(broker.container.db);
    const row = await store.find(owner, 'rotating');
    assert.ok(await store.claimVersion(row!.id, 2, { updated_at: Date.now() }));
    assert.deepEqual(
      [json(await get('lee', 'rotating')).value, json(await get('lee', 'rotating')).version],
      ['v2', 2],
    );
    // The next write takes the following number, and is what reads see.
    assert.equal(json(await put('lee', { name: 'rotating', value: 'v4' })).version, 4);
    assert.equal(json(await get('lee', 'rotating')).value, 'v4');
  });

  it('rotates the user-secrets key and re-seals every version with nothing lost, leaving the token keys alone', async () => {
    await put('frank', { name: 'rot', value: 'first' });
    await put('frank', { name: 'rot', value: 'second' });
    const oldKey = broker.env.USER_SECRETS_KEY!;
    const newKey = newKeyBase64();
    const rotated = buildContainer(
      loadConfig({ ...broker.env, USER_SECRETS_KEY: '', USER_SECRETS_KEYS: `${newKey},${oldKey}` }),
    );
    try {
      // Ctrl-C (`nexus keys rewrap` aborts the signal) stops before the next version; a second
      // run finishes (2026-12-08: the user secrets ran on to the end).
      const controller = new AbortController();
      const partial = await rotated.userSecrets.rewrap(() => controller.abort(), controller.signal);
      assert.equal(partial.interrupted, true);
      assert.equal(partial.rewrapped, 1, JSON.stringify(partial));
      const result = await rotated.userSecrets.rewrap();
      assert.equal(result.interrupted, false);
      assert.deepEqual(result.failed, []);
      assert.ok(result.rewrapped >= 1, `the second run re-sealed the rest: ${JSON.stringify(result)}`);
      assert.ok(result.alreadyCurrent >= 1, 'and skipped what the first had done');
      assert.equal((await rotated.userSecrets.rewrap()).rewrapped, 0, 'a second run has nothing to do');
    } finally {
      await rotated.close();
    }
    // Only the new key now: every version of every secret still reads.
    const onlyNew = buildContainer(loadConfig({ ...broker.env, USER_SECRETS_KEY: newKey }));
    try {
      const ctx = { actor: 'test' };
      const owner = { userId: 'frank', zone: 'default' };
      assert.equal((await onlyNew.userSecrets.read(ctx, owner, 'rot', 1)).value, 'first');
      assert.equal((await onlyNew.userSecrets.read(ctx, owner, 'rot')).value, 'second');
      assert.equal(
        (await onlyNew.userSecrets.read(ctx, { userId: 'alice', zone: 'default' }, 'stripe')).value,
        VALUE,
      );
      assert.equal(
        onlyNew.keys.ring.primaryKid,
        broker.container.keys.ring.primaryKid,
        'token keys untouched',
      );
    } finally {
      await onlyNew.close();
    }
  });

  // Issue #24: a feature that is off is not an outage; 501 says a retry will not help.
  it('answers 501 with the fix when no user-secrets key is configured', async () => {
    const bare = await startBroker({ env: { USER_SECRETS_KEY: '' } });
    try {
      const res = await bare.request({
        method: 'POST',
        url: '/api/v2/secrets?user_id=x',
        payload: { name: 'a', value: 'b' },
      });
      assert.equal(res.statusCode, 501, res.body);
      assert.match(json(res).message as string, /USER_SECRETS_KEY/);
    } finally {
      await bare.close();
    }
  });
});

describe('user secrets on an external secret backend (Vault KV v2 FAKE, see secret-backends/)', () => {
  const fake = new FakeVault();
  let broker: TestBroker;
  before(async () => {
    await fake.start();
    broker = await startBroker({
      env: { SECRET_BACKEND: 'openbao', VAULT_ADDR: fake.url, VAULT_TOKEN: fake.issueToken() },
    });
  });
  after(async () => {
    await broker.close();
    await fake.stop();
  });

  it('stores every version in the backend, sealed, and reads them back', async () => {
    for (const value of ['ext-1', 'ext-2'])
      assert.equal(
        (
          await broker.request({
            method: 'POST',
            url: '/api/v2/secrets?user_id=ivy',
            payload: { name: 'external', value },
          })
        ).statusCode,
        201,
      );
    const read = (v: string) =>
      broker.request({ method: 'GET', url: `/api/v2/secrets/external?user_id=ivy${v}` });
    assert.equal(json(await read('')).value, 'ext-2');
    assert.equal(json(await read('&version=1')).value, 'ext-1');
    const stored = await broker.container.secrets.list('user-secrets/', { limit: 10 });
    assert.equal(stored.length, 2, JSON.stringify(stored));
    for (const path of stored) {
      const raw = await broker.container.secrets.get(path);
      assert.ok(
        raw !== null && !Buffer.from(raw.value).toString('latin1').includes('ext-'),
        'sealed in the backend',
      );
    }
  });
});

describe('user secrets on GCP Secret Manager (official client against the FAKE REST server)', () => {
  const fake = new FakeGcpSecretManager(['acme-test']);
  let broker: TestBroker;
  before(async () => {
    await fake.start();
    broker = await startBroker();
  });
  after(async () => {
    await broker.close();
    await fake.stop();
  });

  it('keeps versions through the GCP backend', async () => {
    const backend = createGcpSecretManagerBackend({
      projectId: 'acme-test',
      attempts: 2,
      prefix: 'nexus-users',
      apiEndpoint: '127.0.0.1',
      client: { port: fake.port, protocol: 'http', authClient: new PassThroughClient() } as never,
    });
    const secrets = createUserSecrets({
      store: createUserSecretsStore(broker.container.db),
      backend,
      ring: broker.container.keys.userSecretsRing,
      audit: broker.container.audit,
    });
    const ctx = { actor: 'test' };
    const owner = { userId: 'jo', zone: 'default' };
    await secrets.put(ctx, owner, { name: 'gcp-held', value: 'g-one' });
    await secrets.put(ctx, owner, { name: 'gcp-held', value: 'g-two' });
    assert.equal((await secrets.read(ctx, owner, 'gcp-held')).value, 'g-two');
    assert.equal((await secrets.read(ctx, owner, 'gcp-held', 1)).value, 'g-one');
    assert.ok(
      [...fake.secrets.keys()].some((k) => k.includes('nexus-users_user')),
      'stored in the GCP project',
    );
    await backend.close();
  });
});
