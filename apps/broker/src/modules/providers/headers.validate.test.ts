import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { captureFields } from '../consent/capture.schema.ts';
import type { StoredProfile } from './providers.schemas.ts';
import { validateProfile } from './providers.validate.ts';

const profile = (config: unknown, params: Record<string, unknown> = {}): StoredProfile => ({
  name: 'datadog',
  auth_type: 'header',
  auth_header: 'client_secret_post',
  enable_discovery: false,
  scopes: [],
  params: { auth_strategy: { type: 'headers', config }, ...params },
});

const problems = (p: StoredProfile) =>
  validateProfile(p, { allowLoopbackHttp: false, hasClientSecret: false });

const DATADOG = { 'DD-API-KEY': '{api_key}', 'DD-APPLICATION-KEY': '{application_key}' };
const SCHEMA = {
  type: 'object',
  required: ['api_key', 'application_key'],
  properties: { api_key: { type: 'string' }, application_key: { type: 'string' } },
};

describe('the headers strategy at registration', () => {
  test('accepted for api_key and header providers, with or without a credential_schema', () => {
    assert.deepEqual(problems(profile(DATADOG)), []);
    assert.deepEqual(problems(profile(DATADOG, { credential_schema: SCHEMA })), []);
    assert.deepEqual(
      problems({
        ...profile({ 'x-api-key': '{api_key}', 'anthropic-version': '2023-06-01' }),
        auth_type: 'api_key',
      }),
      [],
    );
  });

  test('refused for the other auth types', () => {
    for (const auth_type of ['basic_auth', 'query_param', 'hmac_payload', 'aws_sigv4'] as const) {
      const found = problems({ ...profile(DATADOG), auth_type });
      assert.ok(
        found.some((p) => p.path === 'params.auth_strategy.type'),
        `${auth_type}: ${JSON.stringify(found)}`,
      );
    }
  });

  const refused: [string, unknown, string, RegExp][] = [
    ['no header', {}, 'params.auth_strategy.config', /1 to 20 header names/],
    [
      'more than 20 headers',
      Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`x-h${i}`, '{api_key}'])),
      'params.auth_strategy.config',
      /1 to 20 header names/,
    ],
    ['an invalid header name', { 'x key': '{api_key}' }, 'params.auth_strategy.config.x key', /header name/],
    [
      'Host',
      { Host: 'evil.example', 'x-api-key': '{api_key}' },
      'params.auth_strategy.config.Host',
      /set themselves/,
    ],
    [
      'Content-Length',
      { 'content-length': '1', 'x-k': '{k}' },
      'params.auth_strategy.config.content-length',
      /set themselves/,
    ],
    [
      'an X-Nexus- header',
      { 'X-Nexus-User-ID': '{u}' },
      'params.auth_strategy.config.X-Nexus-User-ID',
      /set themselves/,
    ],
    [
      'the same header twice in another case',
      { 'x-api-key': '{api_key}', 'X-API-Key': '{api_key}' },
      'params.auth_strategy.config.X-API-Key',
      /same header as x-api-key/,
    ],
    [
      'a value over 512 characters',
      { 'x-k': `{k}${'a'.repeat(510)}` },
      'params.auth_strategy.config.x-k',
      /1 to 512/,
    ],
    ['an empty value', { 'x-k': '', 'x-j': '{k}' }, 'params.auth_strategy.config.x-k', /1 to 512/],
    ['a value that is not a string', { 'x-k': 5 }, 'params.auth_strategy.config.x-k', /1 to 512/],
    ['a line break', { 'x-k': '{k}\r\nx-evil: 1' }, 'params.auth_strategy.config.x-k', /printable ASCII/],
    ['a trailing space', { 'x-k': '{k} ' }, 'params.auth_strategy.config.x-k', /trailing spaces/],
    ['a stray brace', { 'x-k': '{api key}' }, 'params.auth_strategy.config.x-k', /outside a \{field\}/],
    ['no {field} at all', { 'x-version': '2023-06-01' }, 'params.auth_strategy.config', /no credential/],
  ];
  for (const [what, config, path, message] of refused) {
    test(`refuses ${what}, naming where`, () => {
      const found = problems(profile(config));
      assert.ok(
        found.some((p) => p.path === path && message.test(p.message)),
        `expected ${path} ${message}, got ${JSON.stringify(found)}`,
      );
    });
  }

  test('a {field} that the credential_schema does not define is refused', () => {
    const found = problems(
      profile(
        { 'DD-API-KEY': '{api_key}', 'DD-APPLICATION-KEY': '{app_key}' },
        { credential_schema: SCHEMA },
      ),
    );
    assert.deepEqual(found, [
      {
        path: 'params.credential_schema.properties',
        message: 'must define "app_key", which the headers strategy applies',
      },
    ]);
  });

  test('without a credential_schema, the capture form asks for the fields the templates name', () => {
    const fields = captureFields(profile({ ...DATADOG, 'X-Both': '{api_key}:{site}' }));
    assert.deepEqual(
      fields.map((f) => [f.name, f.required, f.secret]),
      [
        ['api_key', true, true],
        ['application_key', true, true],
        ['site', true, false],
      ],
    );
  });
});
