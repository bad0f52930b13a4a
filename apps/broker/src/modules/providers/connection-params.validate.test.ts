import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fill, forConnection, learntFrom, readPath, resolveConnectionConfig } from './connection-params.ts';
import type { StoredProfile } from './providers.schemas.ts';
import { type ValidationOptions, validateProfile } from './providers.validate.ts';

const production: ValidationOptions = { allowLoopbackHttp: false, hasClientSecret: true };

const base: StoredProfile = {
  name: 'p',
  auth_type: 'oauth2',
  auth_header: 'client_secret_post',
  client_id: 'c',
  auth_url: 'https://example.com/authorize',
  token_url: 'https://example.com/token',
  enable_discovery: false,
  scopes: [],
  params: {},
};

/** catalog/providers/zendesk.yaml as a profile. */
const zendesk: StoredProfile = {
  ...base,
  auth_url: 'https://{subdomain}.zendesk.com/oauth/authorizations/new',
  token_url: 'https://{subdomain}.zendesk.com/oauth/tokens',
  api_base_url: 'https://{subdomain}.zendesk.com/api/v2',
  params: {
    connection_parameters: {
      subdomain: { title: 'Zendesk subdomain', pattern: '^[a-z0-9][a-z0-9-]{0,62}$', example: 'acme' },
    },
  },
};

/** catalog/providers/salesforce.yaml as a profile. */
const salesforce: StoredProfile = {
  ...base,
  auth_url: 'https://login.salesforce.com/services/oauth2/authorize',
  token_url: 'https://login.salesforce.com/services/oauth2/token',
  api_base_url: '{instance_url}',
  user_info_endpoint: '/services/oauth2/userinfo',
  params: {
    revocation_endpoint: 'https://login.salesforce.com/services/oauth2/revoke',
    learnt: {
      instance_url: {
        from: 'token_response',
        path: 'instance_url',
        pattern: '^https://[A-Za-z0-9.-]+\\.(salesforce|force)\\.com$',
      },
    },
  },
};

/** catalog/providers/docusign.yaml as a profile: values learnt from userinfo (`from: api`). */
const docusign: StoredProfile = {
  ...base,
  auth_url: 'https://{auth_host}/oauth/auth',
  token_url: 'https://{auth_host}/oauth/token',
  api_base_url: '{base_uri}/restapi',
  params: {
    connection_parameters: {
      auth_host: {
        title: 'Env',
        pattern: '^account(-d)?\\.docusign\\.com$',
        default: 'account.docusign.com',
      },
    },
    learnt: {
      base_uri: {
        from: 'api',
        url: 'https://{auth_host}/oauth/userinfo',
        path: 'accounts.0.base_uri',
        pattern: '^https://[a-z0-9][a-z0-9-]{0,62}\\.docusign\\.net$',
      },
    },
  },
};

const problems = (profile: StoredProfile, options = production) =>
  validateProfile(profile, options).map((p) => `${p.path}: ${p.message}`);

describe('per-connection parameters: provider checks (decision 0015)', () => {
  it('accepts the catalogue examples (a subdomain parameter, a learnt instance URL)', () => {
    assert.deepEqual(problems(zendesk), []);
    assert.deepEqual(problems(salesforce), []);
  });

  it('refuses a learnt value that would read a token out of the token response', () => {
    // Learnt values are stored in the clear and shown to read keys and agents.
    for (const path of [
      'refresh_token',
      'access_token',
      'authed_user.access_token',
      'id_token',
      'bot.bot_access_token',
      'incoming_webhook.url',
      'oauth_token_secret',
    ]) {
      const learnt = { leaked: { from: 'token_response', path, pattern: '^.+$' } };
      assert.ok(
        problems({ ...salesforce, params: { ...salesforce.params, learnt } }).some((p) =>
          p.startsWith('params.learnt.leaked.path: must not name a token'),
        ),
        path,
      );
    }
  });

  it('refuses declarations of the wrong shape', () => {
    const withParams = (params: Record<string, unknown>) => problems({ ...zendesk, params });
    const subdomain = { title: 'S', pattern: '^[a-z]+$' };
    const cases: [Record<string, unknown>, string][] = [
      [{ connection_parameters: [] }, 'params.connection_parameters: must be an object'],
      [{ connection_parameters: { subdomain: { pattern: '^[a-z]+$' } } }, '.subdomain.title: required'],
      [
        { connection_parameters: { subdomain: { ...subdomain, colour: 'x' } } },
        '.subdomain.colour: unknown field',
      ],
      [{ connection_parameters: { subdomain: { ...subdomain, pattern: '[a-z]+' } } }, 'must be anchored'],
      [{ connection_parameters: { subdomain: { ...subdomain, pattern: '^[a-z]+\\$' } } }, 'must be anchored'],
      [
        { connection_parameters: { subdomain: { ...subdomain, pattern: '^[a-z+$' } } },
        'valid regular expression',
      ],
      [{ connection_parameters: { subdomain: { ...subdomain, example: 'ACME' } } }, '.example: must match'],
      [{ connection_parameters: { subdomain: { ...subdomain, default: 'a b' } } }, '.default: must match'],
      [{ connection_parameters: { 'sub-domain': subdomain } }, 'a name is a letter'],
    ];
    for (const [params, expected] of cases) {
      const found = withParams(params);
      assert.ok(
        found.some((p) => p.includes(expected)),
        `${JSON.stringify(params)}: ${JSON.stringify(found)}`,
      );
    }
  });

  it('refuses placeholders that name nothing, learnt values where the first consent needs them, and other fields', () => {
    const undeclared = problems({ ...zendesk, params: {} });
    assert.ok(undeclared.some((p) => p.startsWith('auth_url: {subdomain} names neither')));
    const learntToken = problems({ ...salesforce, token_url: '{instance_url}/services/oauth2/token' });
    assert.ok(learntToken.some((p) => p.startsWith('token_url: {instance_url} is learnt')));
    const both = problems({ ...salesforce, user_info_endpoint: 'https://api.example.com/{instance_url}' });
    assert.ok(both.some((p) => p.startsWith('user_info_endpoint: {instance_url} starts another URL')));
    const issuer = problems({ ...zendesk, issuer: 'https://{subdomain}.zendesk.com' });
    assert.ok(issuer.some((p) => p.startsWith('issuer: placeholders are filled only')));
    const learntStatic = problems({
      ...salesforce,
      auth_type: 'api_key',
      client_id: undefined,
      auth_url: undefined,
      token_url: undefined,
      user_info_endpoint: undefined,
      params: { learnt: (salesforce.params as { learnt: unknown }).learnt },
    } as unknown as StoredProfile);
    assert.ok(learntStatic.some((p) => p.startsWith('params.learnt: only for oauth2')));
  });

  it('accepts a value learnt from an API (from: api) and checks its url as a URL the broker calls', () => {
    assert.deepEqual(problems(docusign), []);
    const learnt = (spec: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      problems({ ...docusign, params: { ...docusign.params, ...extra, learnt: { base_uri: spec } } });
    const spec = (docusign.params.learnt as { base_uri: Record<string, unknown> }).base_uri;
    const { url: _, ...withoutUrl } = spec;
    const cases: [Record<string, unknown>, string][] = [
      [withoutUrl, 'params.learnt.base_uri.url: required with from: api'],
      [{ ...spec, from: 'token_response' }, 'params.learnt.base_uri.url: only with from: api'],
      [{ ...spec, from: 'header' }, 'params.learnt.base_uri.from: must be token_response or api'],
      [
        { ...spec, url: 'http://account.docusign.com/oauth/userinfo' },
        'params.learnt.base_uri.url: must use https',
      ],
      [{ ...spec, url: 'https://169.254.169.254/latest' }, 'params.learnt.base_uri.url:'],
      [{ ...spec, url: 'https://{nothing}/userinfo' }, '{nothing} names neither'],
      [{ ...spec, url: '{base_uri}/userinfo' }, 'is learnt from an API too'],
      [{ ...spec, path: 'accounts..base_uri' }, 'params.learnt.base_uri.path: must be a dotted path'],
      [{ ...spec, pattern: '^https://.+' }, 'must be anchored'],
    ];
    for (const [given, expected] of cases) {
      const found = learnt(given);
      assert.ok(
        found.some((p) => p.includes(expected)),
        `${JSON.stringify(given)}: ${JSON.stringify(found)}`,
      );
    }
    // A learnt value that starts the URL it is read from must start one of the provider's URLs too.
    const origin = problems({
      ...salesforce,
      params: {
        ...salesforce.params,
        learnt: {
          ...(salesforce.params.learnt as object),
          org: { from: 'api', url: '{host}/id', path: 'organization_id', pattern: '^[A-Za-z0-9]{15,18}$' },
          host: { from: 'token_response', path: 'host', pattern: '^https://[a-z.]+$' },
        },
      },
    });
    assert.ok(origin.some((p) => p.startsWith('params.learnt.org.url: {host} starts this URL')));
    // A learnt value is never in the URLs of the first consent, wherever it comes from.
    const early = problems({ ...docusign, token_url: 'https://{auth_host}/{base_uri}/token' });
    assert.ok(early.some((p) => p.startsWith('token_url: {base_uri} is learnt at consent')));
  });

  it('checks each URL once sample values fill it', () => {
    // A learnt origin must be https by its pattern (in production).
    const httpOrigin = {
      ...salesforce,
      params: {
        learnt: { instance_url: { from: 'token_response', path: 'instance_url', pattern: '^.+$' } },
      },
    };
    assert.ok(problems(httpOrigin).some((p) => p.includes('must start with ^https://')));
    // An example that makes the URL a loopback address is refused as any such URL.
    const loopback = {
      ...zendesk,
      api_base_url: 'https://{host}/api',
      params: {
        connection_parameters: { host: { title: 'Host', pattern: '^[a-z0-9.]+$', example: '127.0.0.1' } },
      },
    };
    assert.ok(problems(loopback).some((p) => p.startsWith('api_base_url:')));
  });
});

describe('per-connection parameters: values', () => {
  it('fills defaults, refuses unknown, missing and mismatching values', () => {
    const profile: StoredProfile = {
      ...zendesk,
      params: {
        connection_parameters: {
          subdomain: { title: 'S', pattern: '^[a-z0-9-]+$' },
          region: { title: 'R', pattern: '^(eu|us)$', default: 'eu' },
        },
      },
    };
    assert.deepEqual(resolveConnectionConfig(profile, { subdomain: 'acme' }), {
      values: { subdomain: 'acme', region: 'eu' },
      problems: [],
    });
    assert.deepEqual(
      resolveConnectionConfig(profile, { region: 'mars', other: 'x' }).problems.map((p) => p.name),
      ['other', 'subdomain', 'region'],
    );
    assert.equal(resolveConnectionConfig(base, undefined).values, null);
    assert.equal(resolveConnectionConfig(base, {}).values, null);
  });

  it('never lets a value leave its place in the URL, whatever the pattern allows', () => {
    const lax: StoredProfile = {
      ...zendesk,
      params: { connection_parameters: { subdomain: { title: 'S', pattern: '^.+$' } } },
    };
    for (const value of ['evil.com/x?', 'a@evil.com', 'a:1', 'a#', 'a b', 'a%2f']) {
      const { problems } = resolveConnectionConfig(lax, { subdomain: value });
      assert.equal(problems.length, 1, value);
    }
  });

  it('reads learnt values at their path and checks them', () => {
    assert.deepEqual(learntFrom(salesforce, { instance_url: 'https://acme.my.salesforce.com' }), {
      values: { instance_url: 'https://acme.my.salesforce.com' },
      problems: [],
    });
    assert.equal(learntFrom(salesforce, { instance_url: 'https://evil.example.com' }).problems.length, 1);
    assert.equal(learntFrom(salesforce, {}).problems.length, 1);
    const nested: StoredProfile = {
      ...salesforce,
      params: {
        learnt: { cloud: { from: 'token_response', path: 'site.id', pattern: '^[a-f0-9-]+$' } },
      },
      api_base_url: 'https://api.example.com/ex/{cloud}',
    };
    assert.deepEqual(learntFrom(nested, { site: { id: 'ab-12' } }).values, { cloud: 'ab-12' });
  });

  it('reads a dotted path where a numeric segment indexes an array', () => {
    const sites = [{ id: 'site-1', scopes: ['read'] }, { id: 'site-2' }];
    assert.equal(readPath(sites, '0.id'), 'site-1');
    assert.equal(readPath(sites, '1.id'), 'site-2');
    assert.equal(readPath(sites, '0.scopes.0'), 'read');
    assert.equal(readPath(sites, '2.id'), undefined, 'past the end');
    assert.equal(readPath(sites, 'id'), undefined, 'a name does not index an array');
    assert.equal(
      readPath({ accounts: [{ base_uri: 'https://na3.docusign.net' }] }, 'accounts.0.base_uri'),
      'https://na3.docusign.net',
    );
    assert.equal(readPath({ '0': { id: 'x' } }, '0.id'), 'x', 'a numeric name of an object');
    assert.equal(readPath({ a: [{ b: 1 }] }, 'a.0.b'), undefined, 'only strings');
    assert.equal(readPath({ a: ['x'] }, 'a.00'), undefined, 'an index has no leading zero');
    assert.equal(readPath([], '0'), undefined);
  });

  it('fills every templated URL of a profile, as written', () => {
    const filled = forConnection(
      { ...zendesk, params: { ...zendesk.params, revocation_endpoint: 'https://{subdomain}.zendesk.com/r' } },
      { subdomain: 'acme' },
    );
    assert.equal(filled.auth_url, 'https://acme.zendesk.com/oauth/authorizations/new');
    assert.equal(filled.token_url, 'https://acme.zendesk.com/oauth/tokens');
    assert.equal(filled.api_base_url, 'https://acme.zendesk.com/api/v2');
    assert.equal(filled.params.revocation_endpoint, 'https://acme.zendesk.com/r');
    assert.equal(fill('{a}/{b}', { a: 'x' }), 'x/{b}', 'a placeholder without a value stays');
  });
});
