/**
 * Every validation error of the provider routes (issue #2): the request envelope, the profile
 * schema (providers.schemas.ts) and the cross-field rules (providers.validate.ts). Each refusal
 * must name the offending field and leave the registry, the secret store and the audit log as
 * they were.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { json, startBroker, type TestBroker } from './harness.ts';

type Problem = { path: string; message: string };
type Expected = {
  status?: number;
  error: string;
  /** A `details` entry must have this path (and, when given, a message matching `message`). */
  path?: string | RegExp;
  message?: RegExp;
};

const oauth = (extra: Record<string, unknown> = {}) => ({
  name: 'candidate',
  client_id: 'candidate-client',
  client_secret: 'candidate-secret',
  auth_url: 'https://idp.example.com/authorize',
  token_url: 'https://idp.example.com/token',
  ...extra,
});
const apiKey = (extra: Record<string, unknown> = {}) => ({
  name: 'candidate',
  auth_type: 'api_key',
  ...extra,
});

const URL_FIELDS = ['auth_url', 'token_url', 'issuer', 'api_base_url', 'user_info_endpoint'] as const;

describe('provider validation', () => {
  let broker: TestBroker;
  let existing: string;
  before(async () => {
    broker = await startBroker();
    const res = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: oauth({ name: 'existing', description: 'the one provider' }) },
    });
    assert.equal(res.statusCode, 201, res.body);
    existing = json<{ id: string }>(res).id;
  });
  after(() => broker.close());

  /** What a refused request must not change. */
  const snapshot = async () => ({
    list: (await broker.request({ method: 'GET', url: '/providers' })).body,
    existing: (await broker.request({ method: 'GET', url: `/providers/${existing}` })).body,
    aliases: (await broker.request({ method: 'GET', url: `/providers/${existing}/aliases` })).body,
    audit: json<{ events: { seq: number }[] }>(await broker.request({ method: 'GET', url: '/audit?limit=1' }))
      .events[0]?.seq,
    secrets: await broker.container.secrets.list('', { limit: 1000 }),
  });

  function assertProblem(res: LightMyRequestResponse, expected: Expected, label: string): void {
    assert.equal(res.statusCode, expected.status ?? 400, `${label}: ${res.body}`);
    const body = json<{ error: string; message: string; details?: Problem[] }>(res);
    assert.equal(body.error, expected.error, `${label}: ${res.body}`);
    assert.equal(typeof body.message, 'string');
    if (expected.path !== undefined) {
      assert.ok(Array.isArray(body.details), `${label}: details missing: ${res.body}`);
      const match = body.details.find(
        (d) =>
          (typeof expected.path === 'string' ? d.path === expected.path : expected.path!.test(d.path)) &&
          (expected.message === undefined || expected.message.test(d.message)),
      );
      assert.ok(match, `${label}: no problem at ${expected.path} ${expected.message ?? ''} in ${res.body}`);
    }
  }

  /** Sends the request, checks the refusal, and checks that nothing changed. */
  async function refused(
    request: Parameters<TestBroker['request']>[0],
    expected: Expected,
    label = `${request.method} ${request.url} ${JSON.stringify(request.payload ?? '').slice(0, 150)}`,
  ): Promise<LightMyRequestResponse> {
    const before = await snapshot();
    const res = await broker.request(request);
    // A wrongly accepted profile is removed again, so it cannot disturb the tests after this one.
    if (res.statusCode === 201 && request.url === '/providers')
      await broker.request({ method: 'DELETE', url: `/providers/${json<{ id: string }>(res).id}` });
    assertProblem(res, expected, label);
    assert.deepEqual(await snapshot(), before, `${label}: the refused request changed something`);
    return res;
  }
  const refuseProfile = (profile: unknown, expected: Expected, label?: string) =>
    refused({ method: 'POST', url: '/providers', payload: { profile } }, expected, label);
  /** A valid profile is accepted (the control for the rule next to it); the provider is removed again. */
  async function accepted(profile: Record<string, unknown>, label = JSON.stringify(profile)): Promise<void> {
    const res = await broker.request({ method: 'POST', url: '/providers', payload: { profile } });
    assert.equal(res.statusCode, 201, `${label}: ${res.body}`);
    const { id } = json<{ id: string }>(res);
    assert.equal((await broker.request({ method: 'DELETE', url: `/providers/${id}` })).statusCode, 200);
  }

  describe('the request envelope', () => {
    it('refuses a body that is not JSON with 415 unsupported_media_type', async () => {
      for (const [type, payload] of [
        ['text/plain', JSON.stringify({ profile: apiKey() })],
        ['application/x-www-form-urlencoded', 'profile[name]=candidate&profile[auth_type]=api_key'],
        ['application/xml', '<profile><name>candidate</name></profile>'],
      ] as const) {
        await refused(
          { method: 'POST', url: '/providers', headers: { 'content-type': type }, payload },
          { status: 415, error: 'unsupported_media_type' },
          type,
        );
      }
    });

    it('refuses malformed, empty and non-object JSON with 400 invalid_request', async () => {
      for (const payload of ['{"profile":', '', '[]', '"profile"', 'null', '{"profile":{"name":"a",}}']) {
        await refused(
          {
            method: 'POST',
            url: '/providers',
            headers: { 'content-type': 'application/json' },
            payload,
          },
          { error: 'invalid_request' },
          `body ${JSON.stringify(payload)}`,
        );
      }
    });

    it('refuses a body without a profile', async () => {
      await refused(
        { method: 'POST', url: '/providers', payload: {} },
        { error: 'invalid_request', path: 'body.profile' },
      );
      await refused(
        { method: 'POST', url: '/providers', payload: { profile: 'candidate' } },
        { error: 'invalid_request', path: 'body.profile' },
      );
    });

    it('refuses unknown fields next to the profile', async () => {
      const res = await refused(
        { method: 'POST', url: '/providers', payload: { profile: apiKey(), dry_run: true } },
        { error: 'invalid_request' },
      );
      assert.match(JSON.stringify(json(res).details), /dry_run/);
    });

    it('points a problem with the body as a whole at "body", not "body."', async () => {
      const res = await refused(
        { method: 'POST', url: '/providers', payload: { profile: apiKey(), dry_run: true } },
        { error: 'invalid_request' },
      );
      const paths = json<{ details: Problem[] }>(res).details.map((d) => d.path);
      assert.ok(
        paths.every((p) => !p.endsWith('.')),
        `paths: ${paths.join(', ')}`,
      );
    });

    it('refuses a body over the size limit with 413 payload_too_large', async () => {
      const limit = broker.container.config.http.bodyLimit;
      await refused(
        {
          method: 'POST',
          url: '/providers',
          payload: { profile: apiKey({ params: { filler: 'x'.repeat(limit) } }) },
        },
        { status: 413, error: 'payload_too_large' },
        'oversized body',
      );
    });

    it('refuses prototype-polluting keys', async () => {
      for (const params of [
        '{"__proto__":{"polluted":"yes"}}',
        '{"constructor":{"prototype":{"polluted":"yes"}}}',
      ]) {
        await refused(
          {
            method: 'POST',
            url: '/providers',
            headers: { 'content-type': 'application/json' },
            payload: `{"profile":{"name":"candidate","auth_type":"api_key","params":${params}}}`,
          },
          { error: 'invalid_request' },
          params,
        );
      }
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });

    it('refuses deeply nested params with 400, not 500', async () => {
      const depth = 20_000;
      await refused(
        {
          method: 'POST',
          url: '/providers',
          headers: { 'content-type': 'application/json' },
          payload: `{"profile":{"name":"candidate","auth_type":"api_key","params":{"credential_schema":{"a":${'['.repeat(depth)}${']'.repeat(depth)}}}}}`,
        },
        // Refused by the JSON depth bound of every route, before the body is even parsed.
        { error: 'invalid_request' },
        'credential_schema nested 20000 deep',
      );
    });

    it('refuses an over-long If-Match header and an over-long id', async () => {
      await refused(
        {
          method: 'PATCH',
          url: `/providers/${existing}`,
          headers: { 'if-match': `"${'1'.repeat(200)}"` },
          payload: { profile: { description: 'changed' } },
        },
        { error: 'invalid_request', path: 'headers.if-match' },
      );
      await refused(
        { method: 'PATCH', url: `/providers/${'a'.repeat(65)}`, payload: { profile: { description: 'x' } } },
        { error: 'invalid_request', path: 'params.id' },
      );
      await refused(
        { method: 'GET', url: `/providers/${'a'.repeat(300)}` },
        { error: 'invalid_request' },
        'id longer than the router allows',
      );
    });
  });

  describe('profile fields', () => {
    it('refuses unknown profile fields and names them', async () => {
      for (const field of ['colour', 'clientSecret', 'redirect_uri', 'aliases', 'id', 'version']) {
        const res = await refuseProfile(oauth({ [field]: 'x' }), { error: 'invalid_request' }, field);
        assert.ok(
          json<{ details: Problem[] }>(res).details.some(
            (d) => d.path === `body.profile.${field}` && d.message === 'unknown field',
          ),
          `${field}: ${res.body}`,
        );
      }
    });

    it('requires a name of 1 to 64 lower-case letters, digits and dashes', async () => {
      const { name: _, ...nameless } = oauth();
      await refuseProfile(nameless, { error: 'invalid_request', path: 'body.profile.name' }, 'no name');
      for (const name of ['', 'GitHub', 'git_hub', 'git hub', 'git/hub', 'gït', 'a'.repeat(65), 7]) {
        await refuseProfile(
          oauth({ name }),
          { error: 'invalid_request', path: 'body.profile.name' },
          `name ${JSON.stringify(name)}`,
        );
      }
      await accepted(oauth({ name: `a-${'0'.repeat(62)}` }), '64 characters');
    });

    it('refuses an unknown auth_type', async () => {
      for (const auth_type of ['saml', 'OAUTH2', 'oauth1', null]) {
        await refuseProfile(
          oauth({ auth_type }),
          { error: 'invalid_request', path: 'body.profile.auth_type' },
          `auth_type ${auth_type}`,
        );
      }
    });

    it('refuses an unknown auth_header', async () => {
      for (const auth_header of ['none', 'basic', 'Client_Secret_Post', 'client-secret-post']) {
        await refuseProfile(
          oauth({ auth_header }),
          { error: 'invalid_request', path: 'body.profile.auth_header' },
          auth_header,
        );
      }
    });

    it('takes auth_type and auth_header of "" (a Go client\'s zero value) as not given: their defaults', async () => {
      // Review (2026-12-07): the original's Go clients send a string field's zero value; the
      // original took it as the default, and an import of such a profile failed with its connections.
      const res = await broker.request({
        method: 'POST',
        url: '/providers',
        payload: { profile: oauth({ name: 'zero-enums', auth_type: '', auth_header: '' }) },
      });
      assert.equal(res.statusCode, 201, res.body);
      const { id } = json<{ id: string }>(res);
      const view = json<{ auth_type: string; auth_header: string }>(
        await broker.request({ method: 'GET', url: `/providers/${id}` }),
      );
      assert.deepEqual([view.auth_type, view.auth_header], ['oauth2', 'client_secret_post']);
      const kept = await broker.request({
        method: 'PATCH',
        url: `/providers/${id}`,
        payload: { auth_header: '' },
      });
      assert.equal(kept.statusCode, 200, kept.body);
      assert.equal(
        json<{ auth_header: string }>(kept).auth_header,
        'client_secret_post',
        'a PATCH with "" changes nothing',
      );
      assert.equal((await broker.request({ method: 'DELETE', url: `/providers/${id}` })).statusCode, 200);
    });

    it('refuses values of the wrong JSON type', async () => {
      for (const [field, value] of [
        ['client_id', 42],
        ['client_secret', { value: 's' }],
        ['description', ['a']],
        ['enable_discovery', 'true'],
        ['scopes', 'read write'],
        ['scopes', [1]],
        ['params', ['access_type=offline']],
        ['auth_url', true],
      ] as const) {
        const path =
          field === 'scopes' && Array.isArray(value) ? 'body.profile.scopes.0' : `body.profile.${field}`;
        await refuseProfile(
          oauth({ [field]: value }),
          { error: 'invalid_request', path },
          `${field}=${value}`,
        );
      }
    });

    it('refuses text fields over the length the API document declares, and accepts them at it', async () => {
      type Doc = {
        components: {
          schemas: {
            ProviderProfileInput: { properties: Record<string, { anyOf?: { maxLength?: number }[] }> };
          };
        };
      };
      const doc = json<Doc>(await broker.request({ method: 'GET', url: '/openapi.json' }));
      const properties = doc.components.schemas.ProviderProfileInput.properties;
      const limits: Record<string, number> = {};
      for (const field of ['client_id', 'client_secret', 'description', 'category']) {
        const max = properties[field]?.anyOf?.find((s) => s.maxLength !== undefined)?.maxLength;
        assert.ok(typeof max === 'number' && max > 0 && max <= 64 * 1024, `${field} has a documented bound`);
        limits[field] = max;
      }
      for (const [field, max] of Object.entries(limits)) {
        await refuseProfile(
          oauth({ [field]: 'x'.repeat(max + 1) }),
          { error: 'invalid_request', path: `body.profile.${field}`, message: new RegExp(`${max}`) },
          `${field} of ${max + 1}`,
        );
      }
      await accepted(
        oauth(Object.fromEntries(Object.entries(limits).map(([f, max]) => [f, 'x'.repeat(max)]))),
        'every field at its limit',
      );
    });

    it('refuses a URL field that is not an absolute http(s) URL, or is over 2048 characters', async () => {
      for (const field of URL_FIELDS) {
        for (const value of [
          'not a url',
          '/relative/path',
          'idp.example.com/authorize',
          'https://',
          'ftp://idp.example.com/file',
          'javascript:alert(1)',
          'file:///etc/passwd',
          `https://idp.example.com/${'a'.repeat(2048)}`,
        ]) {
          // A path is a user_info_endpoint under api_base_url (issue #17, compat-original-rest.test.ts).
          if (field === 'user_info_endpoint' && value === '/relative/path') continue;
          await refuseProfile(
            oauth({ [field]: value }),
            { error: 'invalid_request', path: `body.profile.${field}` },
            `${field}=${value.slice(0, 40)}`,
          );
        }
      }
    });

    it('refuses scopes that are not RFC 6749 scope tokens', async () => {
      for (const scope of [
        'has space',
        'quo"te',
        'back\\slash',
        '',
        'ümlaut',
        'tab\there',
        'x'.repeat(257),
      ]) {
        await refuseProfile(
          oauth({ scopes: ['ok', scope] }),
          { error: 'invalid_request', path: 'body.profile.scopes.1' },
          `scope ${JSON.stringify(scope.slice(0, 20))}`,
        );
      }
      await accepted(
        oauth({ scopes: ['openid', 'https://www.googleapis.com/auth/drive', 'a:b!#$%&()*+,-./'] }),
      );
    });

    it('refuses more than 100 scopes', async () => {
      await refuseProfile(oauth({ scopes: Array.from({ length: 101 }, (_, i) => `s${i}`) }), {
        error: 'invalid_request',
        path: 'body.profile.scopes',
      });
      await accepted(oauth({ scopes: Array.from({ length: 100 }, (_, i) => `s${i}`) }), '100 scopes');
    });

    it('refuses params names that are empty or over 64 characters', async () => {
      await refuseProfile(
        oauth({ params: { ['k'.repeat(65)]: 'v' } }),
        { error: 'invalid_request', path: `body.profile.params.${'k'.repeat(65)}` },
        'name of 65',
      );
      await refuseProfile(oauth({ params: { '': 'v' } }), { error: 'invalid_request' }, 'empty name');
    });
  });

  describe('oauth2 rules', () => {
    it('requires client_id, treating "" and null as missing', async () => {
      const { client_id: _, ...without } = oauth();
      for (const profile of [without, oauth({ client_id: '' }), oauth({ client_id: null })]) {
        await refuseProfile(profile, {
          error: 'invalid_provider',
          path: 'client_id',
          message: /required for oauth2/,
        });
      }
    });

    it('requires a client secret, naming the token endpoint authentication method', async () => {
      const { client_secret: _, ...without } = oauth();
      await refuseProfile(without, {
        error: 'invalid_provider',
        path: 'client_secret',
        message: /client_secret_post/,
      });
      await refuseProfile(
        { ...without, auth_header: 'client_secret_basic', client_secret: '' },
        { error: 'invalid_provider', path: 'client_secret', message: /client_secret_basic/ },
      );
    });

    it('requires auth_url and token_url unless discovery is enabled', async () => {
      for (const field of ['auth_url', 'token_url'] as const) {
        const { [field]: _, ...without } = oauth();
        await refuseProfile(without, {
          error: 'invalid_provider',
          path: field,
          message: /required for oauth2 unless enable_discovery/,
        });
      }
    });

    it('requires an issuer when enable_discovery is true', async () => {
      const { auth_url: _a, token_url: _t, ...without } = oauth();
      await refuseProfile(
        { ...without, enable_discovery: true },
        { error: 'invalid_provider', path: 'issuer', message: /required when enable_discovery/ },
      );
    });

    it('lists every problem of a profile in one answer', async () => {
      const res = await refuseProfile({ name: 'candidate' }, { error: 'invalid_provider' });
      assert.deepEqual(
        json<{ details: Problem[] }>(res)
          .details.map((d) => d.path)
          .sort(),
        ['auth_url', 'client_id', 'client_secret', 'token_url'],
      );
    });

    it('refuses an auth_strategy: oauth2 always uses the oauth2 strategy', async () => {
      await refuseProfile(oauth({ params: { auth_strategy: { type: 'oauth2' } } }), {
        error: 'invalid_provider',
        path: 'params.auth_strategy',
        message: /only for static-credential auth types/,
      });
    });
  });

  describe('URL rules', () => {
    it('refuses http for hosts other than loopback, naming the field', async () => {
      for (const field of URL_FIELDS) {
        await refuseProfile(
          oauth({ [field]: 'http://idp.example.com/x' }),
          { error: 'invalid_provider', path: field, message: /must use https/ },
          field,
        );
      }
      await refuseProfile(oauth({ params: { revocation_endpoint: 'http://idp.example.com/revoke' } }), {
        error: 'invalid_provider',
        path: 'params.revocation_endpoint',
        message: /must use https/,
      });
    });

    it('allows http for loopback hosts outside production', async () => {
      await accepted(
        oauth({
          auth_url: 'http://localhost:9000/authorize',
          token_url: 'http://127.0.0.1:9000/token',
          api_base_url: 'http://[::1]:9000/api',
        }),
      );
    });

    it('refuses http even for loopback hosts in production', async () => {
      const production = await startBroker({
        env: { NEXUS_ENV: 'production', BASE_URL: 'https://nexus.example.com' },
      });
      try {
        for (const field of ['auth_url', 'token_url'] as const) {
          const res = await production.request({
            method: 'POST',
            url: '/providers',
            payload: { profile: oauth({ [field]: 'http://localhost:9000/x' }) },
          });
          assertProblem(res, { error: 'invalid_provider', path: field, message: /^must use https$/ }, field);
        }
        assert.equal((await production.request({ method: 'GET', url: '/providers' })).body, '[]');
      } finally {
        await production.close();
      }
    });

    it('refuses URLs that carry credentials', async () => {
      for (const field of URL_FIELDS) {
        await refuseProfile(
          oauth({ [field]: 'https://user:password@idp.example.com/x' }),
          { error: 'invalid_provider', path: field, message: /must not contain credentials/ },
          field,
        );
      }
    });

    it('refuses URLs with a fragment', async () => {
      for (const field of URL_FIELDS) {
        await refuseProfile(
          oauth({ [field]: 'https://idp.example.com/x#fragment' }),
          { error: 'invalid_provider', path: field, message: /must not contain a fragment/ },
          field,
        );
      }
    });
  });

  describe('static-credential rules', () => {
    it('refuses the oauth2-only fields, each by name', async () => {
      for (const [field, value] of [
        ['client_id', 'id'],
        ['client_secret', 'secret'],
        ['auth_url', 'https://idp.example.com/authorize'],
        ['token_url', 'https://idp.example.com/token'],
        ['issuer', 'https://idp.example.com'],
        ['enable_discovery', true],
        ['auth_header', 'client_secret_basic'],
      ] as const) {
        for (const auth_type of ['api_key', 'basic_auth', 'header']) {
          await refuseProfile(
            apiKey({ auth_type, [field]: value }),
            {
              error: 'invalid_provider',
              path: field,
              message: new RegExp(`not used by auth_type ${auth_type}`),
            },
            `${auth_type} with ${field}`,
          );
        }
      }
    });

    it('requires the config its implied strategy needs', async () => {
      for (const [auth_type, key] of [
        ['query_param', 'param_name'],
        ['hmac_payload', 'header_name'],
        ['aws_sigv4', 'service'],
      ] as const) {
        await refuseProfile(
          apiKey({ auth_type }),
          {
            error: 'invalid_provider',
            path: `params.auth_strategy.config.${key}`,
            message: new RegExp(`required for auth_type ${auth_type}`),
          },
          auth_type,
        );
      }
      for (const auth_type of ['api_key', 'header', 'basic_auth']) await accepted(apiKey({ auth_type }));
    });

    it('requires auth_strategy to be an object {type, config}', async () => {
      for (const strategy of ['header', ['header'], null, 42]) {
        await refuseProfile(
          apiKey({ params: { auth_strategy: strategy } }),
          { error: 'invalid_provider', path: 'params.auth_strategy', message: /must be an object/ },
          JSON.stringify(strategy),
        );
      }
    });

    it('refuses unknown fields in auth_strategy', async () => {
      await refuseProfile(
        apiKey({ params: { auth_strategy: { type: 'header', config: {}, priority: 1 } } }),
        {
          error: 'invalid_provider',
          path: 'params.auth_strategy.priority',
          message: /unknown field/,
        },
      );
    });

    it('refuses a strategy type that does not fit the auth_type', async () => {
      for (const [auth_type, type] of [
        ['api_key', 'basic_auth'],
        ['api_key', 'oauth2'],
        ['header', 'query_param'],
        ['basic_auth', 'header'],
        ['aws_sigv4', 'hmac_payload'],
        ['api_key', undefined],
        ['api_key', 'HEADER'],
      ] as const) {
        await refuseProfile(
          apiKey({ auth_type, params: { auth_strategy: { type, config: {} } } }),
          { error: 'invalid_provider', path: 'params.auth_strategy.type', message: new RegExp(auth_type) },
          `${auth_type} with ${type}`,
        );
      }
    });

    it('requires the strategy config to be an object', async () => {
      for (const config of [[], null, 'param_name=key']) {
        await refuseProfile(
          apiKey({ params: { auth_strategy: { type: 'header', config } } }),
          { error: 'invalid_provider', path: 'params.auth_strategy.config', message: /must be an object/ },
          JSON.stringify(config),
        );
      }
    });

    it('requires each required strategy setting as a non-empty string', async () => {
      for (const config of [{}, { param_name: '' }, { credential_field: 'key' }]) {
        await refuseProfile(
          apiKey({ auth_type: 'query_param', params: { auth_strategy: { type: 'query_param', config } } }),
          {
            error: 'invalid_provider',
            path: 'params.auth_strategy.config.param_name',
            message: /required for strategy query_param/,
          },
          JSON.stringify(config),
        );
      }
    });

    it('refuses settings the strategy does not have', async () => {
      await refuseProfile(
        apiKey({
          params: { auth_strategy: { type: 'header', config: { header_name: 'X-Key', param_name: 'k' } } },
        }),
        {
          error: 'invalid_provider',
          path: 'params.auth_strategy.config.param_name',
          message: /not a setting of strategy header/,
        },
      );
    });

    it('requires setting values to be strings of at most 256 characters', async () => {
      for (const value of [42, true, { name: 'X' }, 'X'.repeat(257)]) {
        await refuseProfile(
          apiKey({ params: { auth_strategy: { type: 'header', config: { value_prefix: value } } } }),
          {
            error: 'invalid_provider',
            path: 'params.auth_strategy.config.value_prefix',
            message: /at most 256 characters/,
          },
          JSON.stringify(value).slice(0, 30),
        );
      }
    });

    it('refuses an hmac algorithm or encoding outside the supported ones', async () => {
      for (const [key, value, allowed] of [
        ['algo', 'md5', /sha256, sha1/],
        ['algo', 'SHA256', /sha256, sha1/],
        ['encoding', 'base32', /hex, base64/],
      ] as const) {
        await refuseProfile(
          apiKey({
            auth_type: 'hmac_payload',
            params: {
              auth_strategy: { type: 'hmac_payload', config: { header_name: 'X-Sig', [key]: value } },
            },
          }),
          { error: 'invalid_provider', path: `params.auth_strategy.config.${key}`, message: allowed },
          `${key}=${value}`,
        );
      }
    });

    it('requires header_name to be a valid HTTP header name', async () => {
      for (const header_name of ['X Key', 'X-Key:', 'Ключ', 'X-Key\r\nInjected: 1', '']) {
        await refuseProfile(
          apiKey({ params: { auth_strategy: { type: 'header', config: { header_name } } } }),
          { error: 'invalid_provider', path: 'params.auth_strategy.config.header_name' },
          JSON.stringify(header_name),
        );
      }
      await accepted(
        apiKey({ params: { auth_strategy: { type: 'header', config: { header_name: 'X-Api-Key' } } } }),
      );
    });

    it('refuses a header_name the broker and the proxy set themselves, in any case', async () => {
      // Sent as the credential's header, these would change where or how the request goes (its
      // host, its framing, the connection), not who sends it: the headers strategy refuses them too.
      for (const header_name of [
        'Host',
        'content-length',
        'Transfer-Encoding',
        'CONNECTION',
        'X-Nexus-Connection',
      ]) {
        await refuseProfile(
          apiKey({ params: { auth_strategy: { type: 'header', config: { header_name } } } }),
          {
            error: 'invalid_provider',
            path: 'params.auth_strategy.config.header_name',
            message: /set themselves/,
          },
          header_name,
        );
        await refuseProfile(
          apiKey({
            auth_type: 'hmac_payload',
            params: { auth_strategy: { type: 'hmac_payload', config: { header_name } } },
          }),
          {
            error: 'invalid_provider',
            path: 'params.auth_strategy.config.header_name',
            message: /set themselves/,
          },
          `hmac ${header_name}`,
        );
      }
      // The original's flat form is checked the same way once it is stored as the strategy's setting.
      await refuseProfile(
        apiKey({ params: { header_name: 'Host' } }),
        {
          error: 'invalid_provider',
          path: 'params.auth_strategy.config.header_name',
          message: /set themselves/,
        },
        'flat Host',
      );
    });
  });

  describe('params rules', () => {
    it('refuses more than 50 params', async () => {
      const params = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`p${i}`, 'v']));
      await refuseProfile(oauth({ params }), {
        error: 'invalid_provider',
        path: 'params',
        message: /at most 50/,
      });
    });

    it('refuses param names outside letters, digits, dot, dash and underscore', async () => {
      for (const key of ['a b', 'a/b', 'a=b', 'a&b', 'naïve']) {
        await refuseProfile(
          oauth({ params: { [key]: 'v' } }),
          { error: 'invalid_provider', path: `params.${key}`, message: /letters, digits/ },
          key,
        );
      }
    });

    it('refuses params that would override a core authorization parameter, in any case', async () => {
      for (const key of [
        'response_type',
        'client_id',
        'redirect_uri',
        'scope',
        'state',
        'nonce',
        'code_challenge',
        'code_challenge_method',
        'response_mode',
        'request',
        'request_uri',
        'Redirect_URI',
        'STATE',
      ]) {
        await refuseProfile(
          oauth({ params: { [key]: 'attacker-value' } }),
          { error: 'invalid_provider', path: `params.${key}`, message: /core authorization parameter/ },
          key,
        );
      }
    });

    it('requires skip_scope_on_auth and skip_scope_on_exchange to be true or false', async () => {
      for (const key of ['skip_scope_on_auth', 'skip_scope_on_exchange']) {
        for (const value of ['yes', 1, 'TRUE', null]) {
          await refuseProfile(
            oauth({ params: { [key]: value } }),
            { error: 'invalid_provider', path: `params.${key}`, message: /true or false/ },
            `${key}=${value}`,
          );
        }
      }
      await accepted(oauth({ params: { skip_scope_on_auth: true, skip_scope_on_exchange: 'false' } }));
    });

    it('requires credential_schema, auth_strategy and validation to be objects', async () => {
      for (const key of ['credential_schema', 'auth_strategy', 'validation']) {
        for (const value of ['text', ['a'], null, 3]) {
          await refuseProfile(
            apiKey({ params: { [key]: value } }),
            { error: 'invalid_provider', path: `params.${key}`, message: /must be an object/ },
            `${key}=${JSON.stringify(value)}`,
          );
        }
      }
    });

    it('refuses an object param over 16 KiB of JSON', async () => {
      const properties = Object.fromEntries(
        Array.from({ length: 200 }, (_, i) => [`field_${i}`, { title: 'x'.repeat(80) }]),
      );
      await refuseProfile(apiKey({ params: { credential_schema: { type: 'object', properties } } }), {
        error: 'invalid_provider',
        path: 'params.credential_schema',
        message: /at most 16384 bytes/,
      });
    });

    it('refuses a credential_schema whose properties are not objects', async () => {
      for (const properties of [{ api_key: null }, { api_key: 'string' }, 'api_key', ['api_key']]) {
        const res = await broker.request({
          method: 'POST',
          url: '/providers',
          payload: { profile: apiKey({ params: { credential_schema: { type: 'object', properties } } }) },
        });
        if (res.statusCode === 201) {
          // Show what the stored schema does to the capture page before cleaning up.
          const id = json<{ id: string }>(res).id;
          const started = await broker.request({
            method: 'POST',
            url: '/v1/request-connection',
            payload: { user_id: 'u', provider_id: id, return_url: 'http://localhost:3000/done' },
          });
          const state = json<{ state: string }>(started).state;
          const page = await broker.request({
            method: 'GET',
            url: `/v1/capture-schema?state=${encodeURIComponent(state)}`,
          });
          await broker.request({ method: 'DELETE', url: `/providers/${id}` });
          assert.fail(
            `properties ${JSON.stringify(properties)} accepted (201); capture-schema then answers ${page.statusCode}`,
          );
        }
        assertProblem(
          res,
          { error: 'invalid_provider', path: /^params\.credential_schema\b/ },
          JSON.stringify(properties),
        );
      }
    });

    it('requires token_request_format to be json or form', async () => {
      for (const value of ['xml', 'JSON', true]) {
        await refuseProfile(
          oauth({ params: { token_request_format: value } }),
          { error: 'invalid_provider', path: 'params.token_request_format', message: /json or form/ },
          String(value),
        );
      }
      await accepted(oauth({ params: { token_request_format: 'json' } }));
    });

    it('requires revocation_endpoint to be an https URL', async () => {
      for (const [value, message] of [
        [42, /must be a URL/],
        [{ url: 'https://idp.example.com' }, /must be a URL/],
        ['not a url', /absolute URL/],
        ['/revoke', /absolute URL/],
        ['ftp://idp.example.com/revoke', /must use https/],
        ['https://u:p@idp.example.com/revoke', /credentials/],
      ] as const) {
        await refuseProfile(
          oauth({ params: { revocation_endpoint: value } }),
          { error: 'invalid_provider', path: 'params.revocation_endpoint', message },
          JSON.stringify(value),
        );
      }
    });

    it('requires extra authorization parameters to be strings of at most 2048 characters', async () => {
      for (const value of [1, true, null, { a: 'b' }, ['offline'], 'x'.repeat(2049)]) {
        await refuseProfile(
          oauth({ params: { access_type: value } }),
          { error: 'invalid_provider', path: 'params.access_type', message: /strings of at most 2048/ },
          JSON.stringify(value).slice(0, 30),
        );
      }
      await accepted(oauth({ params: { access_type: 'x'.repeat(2048) } }));
    });
  });

  describe('params.validation rules (the probe of captured credentials)', () => {
    const probe = (validation: unknown, extra: Record<string, unknown> = {}) =>
      apiKey({ api_base_url: 'https://api.example.com', ...extra, params: { validation } });

    it('refuses a probe for auth types the broker cannot apply', async () => {
      await refuseProfile(oauth({ params: { validation: { url: 'https://idp.example.com/me' } } }), {
        error: 'invalid_provider',
        path: 'params.validation',
        message: /not available for auth_type oauth2/,
      });
      await refuseProfile(
        apiKey({
          auth_type: 'aws_sigv4',
          params: {
            auth_strategy: { type: 'aws_sigv4', config: { service: 's3' } },
            validation: { url: 'https://s3.example.com/' },
          },
        }),
        {
          error: 'invalid_provider',
          path: 'params.validation',
          message: /not available for auth_type aws_sigv4/,
        },
      );
    });

    it('refuses unknown probe fields', async () => {
      await refuseProfile(probe({ url: '/me', verb: 'GET' }), {
        error: 'invalid_provider',
        path: 'params.validation.verb',
        message: /unknown field/,
      });
    });

    it('refuses a probe method other than GET, HEAD or POST', async () => {
      for (const method of ['DELETE', 'get', 'PUT', 1]) {
        await refuseProfile(
          probe({ url: '/me', method }),
          { error: 'invalid_provider', path: 'params.validation.method', message: /GET, HEAD, POST/ },
          String(method),
        );
      }
    });

    it('requires expect_status to be 1 to 20 HTTP status codes between 200 and 599', async () => {
      for (const expect_status of [
        [],
        [199],
        [600],
        [200.5],
        ['200'],
        200,
        Array.from({ length: 21 }, () => 200),
      ]) {
        await refuseProfile(
          probe({ url: '/me', expect_status }),
          { error: 'invalid_provider', path: 'params.validation.expect_status' },
          JSON.stringify(expect_status),
        );
      }
      await accepted(probe({ url: '/me', method: 'HEAD', expect_status: [200, 204] }));
    });

    it('requires a probe URL unless user_info_endpoint is set', async () => {
      await refuseProfile(probe({}), {
        error: 'invalid_provider',
        path: 'params.validation.url',
        message: /required unless user_info_endpoint/,
      });
      await accepted(probe({}, { user_info_endpoint: 'https://api.example.com/me' }));
    });

    it('requires a probe path to have an api_base_url to resolve against', async () => {
      await refuseProfile(apiKey({ params: { validation: { url: '/me' } } }), {
        error: 'invalid_provider',
        path: 'params.validation.url',
        message: /api_base_url/,
      });
    });

    it('requires the probe URL to be a string of at most 2048 characters', async () => {
      for (const url of [42, { path: '/me' }, `/${'a'.repeat(2048)}`]) {
        await refuseProfile(
          probe({ url }),
          { error: 'invalid_provider', path: 'params.validation.url', message: /at most 2048/ },
          JSON.stringify(url).slice(0, 30),
        );
      }
    });

    it('checks an absolute probe URL like every other URL', async () => {
      for (const [url, message] of [
        ['me', /absolute URL/],
        ['http://api.example.com/me', /must use https/],
        ['https://u:p@api.example.com/me', /credentials/],
        ['https://api.example.com/me#x', /fragment/],
      ] as const) {
        await refuseProfile(
          probe({ url }),
          { error: 'invalid_provider', path: 'params.validation.url', message },
          url,
        );
      }
    });
  });

  describe('private_key_jwt rules', () => {
    const pem = (key: { export(o: { format: 'pem'; type: 'pkcs8' }): string | Buffer }) =>
      String(key.export({ format: 'pem', type: 'pkcs8' }));

    it('requires the client_secret to be a private key it can sign with, without echoing it', async () => {
      const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
      const secp256k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
      for (const [label, secret] of [
        ['a shared secret', 'plain-shared-secret-value'],
        [
          'a public key',
          String(generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' })),
        ],
        ['a weak RSA key', pem(rsa1024.privateKey)],
        ['an unsupported curve', pem(secp256k1.privateKey)],
      ] as const) {
        const res = await refuseProfile(
          oauth({ auth_header: 'private_key_jwt', client_secret: secret }),
          { error: 'invalid_provider', path: 'client_secret' },
          label,
        );
        assert.ok(!res.body.includes(secret.length > 80 ? secret.slice(40, 80) : secret), `${label} echoed`);
      }
      await accepted(
        oauth({
          auth_header: 'private_key_jwt',
          client_secret: pem(generateKeyPairSync('ed25519').privateKey),
        }),
      );
    });

    it('refuses private_key_jwt for static-credential types', async () => {
      await refuseProfile(apiKey({ auth_header: 'private_key_jwt' }), {
        error: 'invalid_provider',
        path: 'auth_header',
        message: /not used by auth_type api_key/,
      });
    });

    it('does not reuse a stored shared secret as a private key', async () => {
      await refused(
        {
          method: 'PATCH',
          url: `/providers/${existing}`,
          payload: { profile: { auth_header: 'private_key_jwt' } },
        },
        { error: 'invalid_provider', path: 'client_secret', message: /required/ },
      );
    });
  });

  describe('PUT, PATCH and aliases validate like POST', () => {
    it('refuses an invalid PUT and leaves the provider as it was', async () => {
      await refused(
        {
          method: 'PUT',
          url: `/providers/${existing}`,
          payload: { profile: oauth({ name: 'existing', token_url: 'http://idp.example.com/token' }) },
        },
        { error: 'invalid_provider', path: 'token_url' },
      );
      await refused(
        { method: 'PUT', url: `/providers/${existing}`, payload: { profile: { auth_type: 'api_key' } } },
        { error: 'invalid_request', path: 'body.profile.name' },
      );
      await refused(
        {
          method: 'PUT',
          url: `/providers/${existing}`,
          payload: { profile: oauth({ name: 'existing', extra: 1 }) },
        },
        { error: 'invalid_request' },
      );
    });

    it('refuses a PATCH whose result is invalid and leaves the provider as it was', async () => {
      for (const [profile, expected] of [
        [{ auth_type: 'api_key' }, { error: 'invalid_provider', path: 'client_id', message: /not used by/ }],
        [{ client_id: null }, { error: 'invalid_provider', path: 'client_id' }],
        [{ client_secret: '' }, { error: 'invalid_provider', path: 'client_secret' }],
        [{ token_url: '' }, { error: 'invalid_provider', path: 'token_url' }],
        [
          { enable_discovery: true, auth_url: null },
          { error: 'invalid_provider', path: 'issuer' },
        ],
        [{ issuer: 'https://idp.example.com#x' }, { error: 'invalid_provider', path: 'issuer' }],
        [{ params: { state: 'fixed' } }, { error: 'invalid_provider', path: 'params.state' }],
      ] as const) {
        await refused(
          { method: 'PATCH', url: `/providers/${existing}`, payload: { profile } },
          expected,
          `PATCH ${JSON.stringify(profile)}`,
        );
      }
    });

    it('refuses PATCH fields that are unknown, mistyped, or null where a value is required', async () => {
      for (const [profile, path] of [
        [{ name: null }, 'body.profile.name'],
        [{ auth_type: null }, 'body.profile.auth_type'],
        [{ auth_header: null }, 'body.profile.auth_header'],
        [{ enable_discovery: null }, 'body.profile.enable_discovery'],
        [{ name: 'Existing' }, 'body.profile.name'],
        [{ scopes: ['a b'] }, 'body.profile.scopes.0'],
        [{ description: 'd'.repeat(1001) }, 'body.profile.description'],
        [{ auth_url: 'ftp://idp.example.com' }, 'body.profile.auth_url'],
      ] as const) {
        await refused(
          { method: 'PATCH', url: `/providers/${existing}`, payload: { profile } },
          { error: 'invalid_request', path },
          `PATCH ${JSON.stringify(profile)}`,
        );
      }
      const res = await refused(
        { method: 'PATCH', url: `/providers/${existing}`, payload: { profile: { secret: 'x' } } },
        { error: 'invalid_request' },
      );
      assert.match(res.body, /secret/);
      // A flat map is the original's PATCH body (issue #17); the two forms mixed are refused.
      await refused(
        {
          method: 'PATCH',
          url: `/providers/${existing}`,
          payload: { profile: { description: 'inside' }, description: 'outside the profile' },
        },
        { error: 'invalid_request' },
      );
    });

    it('refuses an invalid alias and leaves the aliases as they were', async () => {
      for (const payload of [
        { alias: 'Prod' },
        { alias: 'with space' },
        { alias: '' },
        { alias: 'a'.repeat(65) },
        { alias: 7 },
        {},
        { alias: 'ok-alias', note: 'x' },
      ]) {
        await refused(
          { method: 'POST', url: `/providers/${existing}/aliases`, payload },
          { error: 'invalid_request' },
          `alias ${JSON.stringify(payload)}`,
        );
      }
      await refused(
        { method: 'POST', url: `/providers/${existing}/aliases`, payload: { alias: 'Prod' } },
        { error: 'invalid_request', path: 'body.alias' },
      );
    });
  });
});
