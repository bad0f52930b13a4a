/**
 * The provider catalogue over HTTP (issue #20, decision 0015): `GET /catalog` and
 * `GET /catalog/{key}` on the admin surface (a read-scope key is enough), and providers made from a
 * template with `POST /providers` and `PUT /providers/{id}`: the entry's expansion, explicit fields
 * winning, `params.template` recorded, then validated and stored as any profile. Both databases.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { assertProblem, DIALECT, json, startBroker, type TestBroker } from './harness.ts';

const CATALOG = join(import.meta.dirname, '..', '..', '..', 'catalog', 'providers');
const entry = (key: string) =>
  parse(readFileSync(join(CATALOG, `${key}.yaml`), 'utf8')) as Record<string, unknown> & {
    version: number;
    oauth2?: Record<string, unknown>;
  };

type View = Record<string, unknown> & {
  id: string;
  name: string;
  params: Record<string, unknown>;
  version: number;
};

describe(`provider catalogue API (${DIALECT})`, { timeout: 120_000 }, () => {
  let broker: TestBroker;
  const readKey = `read-${randomBytes(16).toString('hex')}`;
  const agentKey = `agent-${randomBytes(16).toString('hex')}`;
  before(async () => {
    broker = await startBroker({
      env: { API_KEYS: `ops:full-${readKey},monitor@read:${readKey},robot@agent:${agentKey}` },
    });
  });
  after(() => broker.close());

  const full = () => `full-${readKey}`;
  const call = (method: 'GET' | 'POST' | 'PUT', url: string, payload?: unknown, key = full()) =>
    broker.request({ method, url, key, ...(payload === undefined ? {} : { payload: payload as object }) });
  const view = async (id: string) => json<View>(await call('GET', `/providers/${id}`));

  it('lists every entry with its key, name, auth type, version and parameter names, to a read-scope key', async () => {
    const res = await call('GET', '/catalog', undefined, readKey);
    assert.equal(res.statusCode, 200, res.body);
    const { entries } = json<{ entries: Record<string, unknown>[] }>(res);
    const keys = entries.map((e) => e.key as string);
    assert.deepEqual(keys, [...keys].sort());
    assert.ok(keys.length >= 4);
    const google = entries.find((e) => e.key === 'google');
    assert.deepEqual(
      { ...google, description: undefined },
      {
        key: 'google',
        name: 'Google',
        description: undefined,
        categories: entry('google').categories,
        auth_type: 'oauth2',
        version: entry('google').version,
        parameters: [],
      },
    );
    assert.deepEqual(entries.find((e) => e.key === 'zendesk')?.parameters, ['subdomain']);
  });

  it('returns one entry whole, and 404 catalog_entry_not_found for a key it does not have', async () => {
    const res = await call('GET', '/catalog/salesforce', undefined, readKey);
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(json(res), entry('salesforce'));
    const missing = assertProblem(await call('GET', '/catalog/no-such-api'), 404, 'catalog_entry_not_found');
    assert.deepEqual(missing.details, { key: 'no-such-api' });
    assertProblem(await call('GET', '/catalog/Not_A_Key'), 400, 'invalid_request');
  });

  it('returns the profile an entry expands into, the one POST /providers starts from', async () => {
    const res = await call('GET', '/catalog/google/profile', undefined, readKey);
    assert.equal(res.statusCode, 200, res.body);
    const profile = json<Record<string, unknown> & { params: Record<string, unknown> }>(res);
    assert.equal(profile.name, 'google');
    assert.equal(profile.client_id, undefined);
    assert.deepEqual(profile.params.template, { key: 'google', version: entry('google').version });
    assertProblem(await call('GET', '/catalog/no-such-api/profile'), 404, 'catalog_entry_not_found');
  });

  it('is admin-only: refused without a key and to an agent-scope key', async () => {
    assert.equal((await broker.request({ method: 'GET', url: '/catalog', key: null })).statusCode, 401);
    assertProblem(await call('GET', '/catalog', undefined, agentKey), 403, 'forbidden');
  });

  it('is in the served OpenAPI document, with template in the profile input', async () => {
    const doc = json<{
      paths: Record<string, Record<string, { operationId: string }>>;
      components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
    }>(await broker.request({ method: 'GET', url: '/openapi.json' }));
    assert.equal(doc.paths['/catalog']?.get?.operationId, 'listCatalog');
    assert.equal(doc.paths['/catalog/{key}']?.get?.operationId, 'getCatalogEntry');
    assert.ok(doc.components.schemas.ProviderProfileInput?.properties?.template, 'template is documented');
    assert.ok(doc.components.schemas.CatalogEntry, 'the entry schema is named');
  });

  it('makes a provider from a template: the expansion, the secret kept, params.template recorded', async () => {
    const res = await call('POST', '/providers', {
      profile: { template: 'google', client_id: 'google-client', client_secret: 'google-secret-0123456789' },
    });
    assert.equal(res.statusCode, 201, res.body);
    const p = await view(json<{ id: string }>(res).id);
    const google = entry('google');
    const oauth2 = google.oauth2 as Record<string, unknown>;
    assert.equal(p.name, 'google');
    assert.equal(p.auth_type, 'oauth2');
    assert.equal(p.client_id, 'google-client');
    assert.equal(p.has_client_secret, true);
    assert.equal(p.auth_url, oauth2.authorization_url);
    assert.equal(p.token_url, oauth2.token_url);
    assert.equal(p.auth_header, oauth2.token_auth_method);
    assert.equal(p.user_info_endpoint, oauth2.userinfo_url);
    assert.deepEqual(p.scopes, oauth2.default_scopes);
    assert.equal(p.api_base_url, (google.api as { base_url: string }).base_url);
    assert.equal(p.description, google.description);
    assert.equal(p.category, (google.categories as string[])[0]);
    assert.deepEqual(p.params, {
      ...(oauth2.authorize_params as object),
      revocation_endpoint: oauth2.revocation_url,
      docs_url: google.docs,
      template: { key: 'google', version: google.version },
    });
    assert.ok(!JSON.stringify(p).includes('google-secret-0123456789'));
  });

  it('lets explicit fields win: name, scopes, params merged key by key', async () => {
    const res = await call('POST', '/providers', {
      profile: {
        template: 'google',
        name: 'google-work',
        client_id: 'work-client',
        client_secret: 'work-secret-0123456789',
        scopes: ['openid', 'https://www.googleapis.com/auth/drive.readonly'],
        params: { prompt: 'select_account consent', hd: 'example.com' },
        description: 'Work accounts',
      },
    });
    assert.equal(res.statusCode, 201, res.body);
    const p = await view(json<{ id: string }>(res).id);
    assert.equal(p.name, 'google-work');
    assert.deepEqual(p.scopes, ['openid', 'https://www.googleapis.com/auth/drive.readonly']);
    assert.equal(p.description, 'Work accounts');
    assert.equal(p.params.prompt, 'select_account consent');
    assert.equal(p.params.hd, 'example.com');
    assert.equal(p.params.access_type, 'offline');
    assert.deepEqual(p.params.template, { key: 'google', version: entry('google').version });
  });

  it('makes static-credential and per-connection-parameter providers from their templates', async () => {
    const cohere = await call('POST', '/providers', { profile: { template: 'cohere' } });
    assert.equal(cohere.statusCode, 201, cohere.body);
    const c = await view(json<{ id: string }>(cohere).id);
    const staticPart = entry('cohere').static as Record<string, unknown>;
    assert.equal(c.auth_type, 'api_key');
    assert.deepEqual(c.params.credential_schema, staticPart.capture);
    assert.deepEqual(c.params.auth_strategy, staticPart.strategy);
    assert.equal(c.params.capture_help, staticPart.help);
    const zendesk = await call('POST', '/providers', {
      profile: { template: 'zendesk', client_id: 'z', client_secret: 'zendesk-secret-0123456789' },
    });
    assert.equal(zendesk.statusCode, 201, zendesk.body);
    const z = await view(json<{ id: string }>(zendesk).id);
    assert.deepEqual(z.params.connection_parameters, entry('zendesk').parameters);
    assert.equal(z.auth_url, (entry('zendesk').oauth2 as Record<string, unknown>).authorization_url);
  });

  it('refuses an unknown template with 400 unknown_template, and a bad expansion as any bad profile', async () => {
    const unknown = assertProblem(
      await call('POST', '/providers', { profile: { template: 'no-such-api', client_id: 'x' } }),
      400,
      'unknown_template',
    );
    assert.deepEqual(unknown.details, { template: 'no-such-api' });
    // The expansion is validated like any profile: an oauth2 template without a client is refused.
    const missing = assertProblem(
      await call('POST', '/providers', { profile: { template: 'google', name: 'google-nosecret' } }),
      400,
      'invalid_provider',
    );
    assert.ok(JSON.stringify(missing.details).includes('client_secret'), JSON.stringify(missing.details));
    assertProblem(await call('POST', '/providers', { profile: { template: 7 } }), 400, 'invalid_request');
    const names = json<{ name: string }[]>(await call('GET', '/providers')).map((p) => p.name);
    assert.ok(!names.includes('google-nosecret') && !names.includes('no-such-api'));
    // A bare body with a template gets the hint to wrap it.
    const bare = assertProblem(
      await call('POST', '/providers', { template: 'google' }),
      400,
      'invalid_request',
    );
    assert.match(bare.message, /wrap the provider profile/);
  });

  it('replaces a provider with a template (PUT, bare or wrapped), keeping its stored secret', async () => {
    const created = await call('POST', '/providers', {
      profile: {
        name: 'hand-made',
        client_id: 'hm',
        client_secret: 'hand-made-secret-0123456789',
        auth_url: 'https://accounts.google.com/o/oauth2/v2/auth',
        token_url: 'https://oauth2.googleapis.com/token',
        api_base_url: 'https://www.googleapis.com',
        params: { revocation_endpoint: 'https://oauth2.googleapis.com/revoke' },
      },
    });
    assert.equal(created.statusCode, 201, created.body);
    const id = json<{ id: string }>(created).id;
    // Secrets keep going where they went, so the stored secret is kept without being sent again.
    const wrapped = await call('PUT', `/providers/${id}`, {
      profile: {
        template: 'google',
        name: 'hand-made',
        client_id: 'hm',
        params: { login_hint: 'a@example.com' },
      },
    });
    assert.equal(wrapped.statusCode, 200, wrapped.body);
    const p = json<View>(wrapped);
    assert.equal(p.has_client_secret, true);
    assert.deepEqual(p.params.template, { key: 'google', version: entry('google').version });
    assert.equal(p.params.login_hint, 'a@example.com');
    const bare = await call('PUT', `/providers/${id}`, {
      template: 'google',
      name: 'hand-made',
      client_id: 'hm2',
    });
    assert.equal(bare.statusCode, 200, bare.body);
    assert.equal(json<View>(bare).client_id, 'hm2');
    assert.equal(json<View>(bare).params.login_hint, undefined);
    assertProblem(
      await call('PUT', `/providers/${id}`, { template: 'nope', name: 'hand-made' }),
      400,
      'unknown_template',
    );
  });

  it('checks params.template, params.capture_help and params.docs_url on any profile', async () => {
    const base = {
      name: 'checked',
      client_id: 'c',
      client_secret: 'checked-secret-0123456789',
      auth_url: 'https://idp.example.com/authorize',
      token_url: 'https://idp.example.com/token',
    };
    const paths = async (params: Record<string, unknown>) => {
      const body = assertProblem(
        await call('POST', '/providers', { profile: { ...base, params } }),
        400,
        'invalid_provider',
      );
      return (body.details as { path: string }[]).map((d) => d.path).sort();
    };
    assert.deepEqual(await paths({ template: 'google' }), ['params.template']);
    assert.deepEqual(await paths({ template: { key: 'Google', version: 0, extra: 1 } }), [
      'params.template.extra',
      'params.template.key',
      'params.template.version',
    ]);
    assert.deepEqual(await paths({ docs_url: 'http://docs.example.com' }), ['params.docs_url']);
    assert.deepEqual(await paths({ docs_url: 'not a url' }), ['params.docs_url']);
    assert.deepEqual(await paths({ capture_help: 'Find it under Settings' }), ['params.capture_help']);
    const ok = await call('POST', '/providers', {
      profile: {
        ...base,
        params: { template: { key: 'google', version: 1 }, docs_url: 'https://docs.example.com/api#auth' },
      },
    });
    assert.equal(ok.statusCode, 201, ok.body);
  });
});
