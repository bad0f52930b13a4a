// Regenerate with: node testdata/derive-strategy-vectors.mjs > testdata/strategy-vectors.json
// (apps/broker/test/strategy-vectors.test.ts checks that the file is what this script derives).
//
// Independent derivation of the strategy vectors: HMAC/basic via node:crypto/Buffer, SigV4 written
// from the AWS docs ("Create a signed AWS API request"), NOT by calling any Nexus implementation.
// The `headers` and aws_sigv4 vectors are in derive-headers-vectors.mjs and derive-sigv4-vectors.mjs.
import { createHmac } from 'node:crypto';
import { headersVectors } from './derive-headers-vectors.mjs';
import { sigv4Vectors } from './derive-sigv4-vectors.mjs';

const NOW = '2026-01-02T03:04:05Z';
const mac = (algo, key, body, encoding) =>
  createHmac(algo, key).update(Buffer.from(body, 'utf8')).digest(encoding);
const basic = (u, p) => `Basic ${Buffer.from(`${u}:${p}`, 'utf8').toString('base64')}`;
const q = (url) => [...new URL(url).searchParams];

const JSON_BODY = '{"amount":42,"note":"café au lait"}';
const vectors = [];
const add = (v) => vectors.push(v);
const ok = (name, strategy, credentials, request, expected, extra = {}) =>
  add({
    name,
    strategy,
    credentials,
    request: { method: 'GET', headers: {}, body: '', ...request },
    ...extra,
    expected: { query: q(request.url), ...expected },
  });
const err = (name, strategy, credentials, request, names) =>
  add({
    name,
    strategy,
    credentials,
    request: { method: 'GET', headers: {}, body: '', ...request },
    ...(strategy.type === 'aws_sigv4' ? { now: NOW } : {}),
    expected: { error: { names } },
  });

// oauth2
ok(
  'oauth2: Authorization Bearer <access_token>, other headers kept',
  { type: 'oauth2', config: {} },
  { access_token: 'at-0123456789' },
  { url: 'https://api.example.com/v1/me', headers: { accept: 'application/json' } },
  {
    headers: { accept: 'application/json', authorization: 'Bearer at-0123456789' },
    url: 'https://api.example.com/v1/me',
  },
);
ok(
  'oauth2: replaces an Authorization header already on the request',
  { type: 'oauth2', config: {} },
  { access_token: 'at-new' },
  { url: 'https://api.example.com/v1/me', headers: { authorization: 'Bearer at-stale' } },
  { headers: { authorization: 'Bearer at-new' }, url: 'https://api.example.com/v1/me' },
);
err(
  'oauth2: no access_token is an error naming the field',
  { type: 'oauth2', config: {} },
  { refresh_token: 'rt-secret-value' },
  { url: 'https://api.example.com/v1/me' },
  ['access_token'],
);

// header
ok(
  'header: defaults (Authorization, api_key, no prefix)',
  { type: 'header', config: {} },
  { api_key: 'sk-live-4242' },
  { url: 'https://api.example.com/v1/items' },
  { headers: { authorization: 'sk-live-4242' }, url: 'https://api.example.com/v1/items' },
);
ok(
  'header: header_name, credential_field and value_prefix (verbatim, with its space)',
  {
    type: 'header',
    config: { header_name: 'X-Api-Token', credential_field: 'token', value_prefix: 'Token ' },
  },
  { token: 'tok-1', api_key: 'not-this-one' },
  { url: 'https://api.example.com/v1/items', headers: { accept: 'text/plain' } },
  {
    headers: { accept: 'text/plain', 'x-api-token': 'Token tok-1' },
    url: 'https://api.example.com/v1/items',
  },
);
ok(
  'header: value_prefix "Bearer " on the default header',
  { type: 'header', config: { value_prefix: 'Bearer ' } },
  { api_key: 'sk-2' },
  { url: 'https://api.example.com/v1/items' },
  { headers: { authorization: 'Bearer sk-2' }, url: 'https://api.example.com/v1/items' },
);
ok(
  'header: a value_prefix with no space is prepended as is',
  { type: 'header', config: { header_name: 'X-Key', value_prefix: 'key=' } },
  { api_key: 'abc' },
  { url: 'https://api.example.com/v1/items' },
  { headers: { 'x-key': 'key=abc' }, url: 'https://api.example.com/v1/items' },
);
err(
  'header: missing credential_field is an error naming the field, not the values',
  { type: 'header', config: { header_name: 'X-Api-Token', credential_field: 'token' } },
  { api_key: 'sk-secret-do-not-leak' },
  { url: 'https://api.example.com/v1/items' },
  ['token'],
);
err(
  'header: missing default api_key field',
  { type: 'header', config: {} },
  { other: 'other-secret-value' },
  { url: 'https://api.example.com/v1/items' },
  ['api_key'],
);

headersVectors({ ok, err });

// query_param
for (const [name, config, creds, url] of [
  [
    'query_param: added to a URL without a query (default credential_field api_key)',
    { param_name: 'key' },
    { api_key: 'k-123' },
    'https://maps.example.com/v1/geocode',
  ],
  [
    'query_param: existing parameters kept, credential_field, value with reserved characters',
    { param_name: 'access_key', credential_field: 'secret' },
    { secret: 'a b&c=d/é+%' },
    'https://api.example.com/v1/search?q=hello%20world&page=2&tag=x&tag=y',
  ],
  [
    'query_param: replaces a stale value of the same parameter',
    { param_name: 'api_key' },
    { api_key: 'fresh' },
    'https://api.example.com/v1/items?api_key=stale&keep=1',
  ],
]) {
  const out = new URL(url);
  out.searchParams.delete(config.param_name);
  const value = creds[config.credential_field ?? 'api_key'];
  ok(
    name,
    { type: 'query_param', config },
    creds,
    { url },
    {
      headers: {},
      url: `${out.origin}${out.pathname}`,
      query: [...out.searchParams, [config.param_name, value]],
    },
  );
}
err(
  'query_param: no param_name configured is an error naming it',
  { type: 'query_param', config: {} },
  { api_key: 'k-secret-value' },
  { url: 'https://api.example.com/v1/items' },
  ['param_name'],
);
err(
  'query_param: missing credential field',
  { type: 'query_param', config: { param_name: 'key', credential_field: 'key_value' } },
  { api_key: 'k-secret-value' },
  { url: 'https://api.example.com/v1/items' },
  ['key_value'],
);

// basic_auth
ok(
  'basic_auth: defaults username/password; a colon and non-ASCII in the password',
  { type: 'basic_auth', config: {} },
  { username: 'alice', password: 'pä:ss word' },
  { url: 'https://api.example.com/v1/items' },
  { headers: { authorization: basic('alice', 'pä:ss word') }, url: 'https://api.example.com/v1/items' },
);
ok(
  'basic_auth: username_field and password_field',
  { type: 'basic_auth', config: { username_field: 'client_id', password_field: 'client_secret' } },
  { client_id: 'cid', client_secret: 'csecret', username: 'not-this' },
  { url: 'https://api.example.com/v1/items' },
  { headers: { authorization: basic('cid', 'csecret') }, url: 'https://api.example.com/v1/items' },
);
err(
  'basic_auth: missing password field',
  { type: 'basic_auth', config: {} },
  { username: 'alice' },
  { url: 'https://api.example.com/v1/items' },
  ['password'],
);
err(
  'basic_auth: missing configured username field',
  { type: 'basic_auth', config: { username_field: 'login' } },
  { username: 'alice', password: 'pw-secret-value' },
  { url: 'https://api.example.com/v1/items' },
  ['login'],
);

// hmac_payload
for (const [algo, encoding] of [
  [undefined, undefined],
  ['sha256', 'base64'],
  ['sha1', 'hex'],
  ['sha1', 'base64'],
]) {
  const config = { header_name: 'X-Signature', ...(algo ? { algo } : {}), ...(encoding ? { encoding } : {}) };
  ok(
    `hmac_payload: ${algo ?? 'sha256 (default)'} ${encoding ?? 'hex (default)'} over the exact body bytes`,
    { type: 'hmac_payload', config },
    { api_secret: 'whsec-s3cr3t' },
    {
      method: 'POST',
      url: 'https://hooks.example.com/v1/events',
      headers: { 'content-type': 'application/json' },
      body: JSON_BODY,
    },
    {
      headers: {
        'content-type': 'application/json',
        'x-signature': mac(algo ?? 'sha256', 'whsec-s3cr3t', JSON_BODY, encoding ?? 'hex'),
      },
      url: 'https://hooks.example.com/v1/events',
    },
  );
}
ok(
  'hmac_payload: empty body (HMAC of zero bytes), secret_field',
  { type: 'hmac_payload', config: { header_name: 'X-Hub-Signature', secret_field: 'signing_key' } },
  { signing_key: 'k' },
  { url: 'https://hooks.example.com/v1/ping' },
  { headers: { 'x-hub-signature': mac('sha256', 'k', '', 'hex') }, url: 'https://hooks.example.com/v1/ping' },
);
err(
  'hmac_payload: no header_name configured',
  { type: 'hmac_payload', config: {} },
  { api_secret: 'whsec-secret-value' },
  { method: 'POST', url: 'https://hooks.example.com/v1/events', body: '{}' },
  ['header_name'],
);
err(
  'hmac_payload: missing secret field',
  { type: 'hmac_payload', config: { header_name: 'X-Signature' } },
  { other: 'other-secret-value' },
  { method: 'POST', url: 'https://hooks.example.com/v1/events', body: '{}' },
  ['api_secret'],
);
err(
  'hmac_payload: an algo other than sha256/sha1 is refused',
  { type: 'hmac_payload', config: { header_name: 'X-Signature', algo: 'md5' } },
  { api_secret: 'whsec-secret-value' },
  { method: 'POST', url: 'https://hooks.example.com/v1/events', body: '{}' },
  ['md5'],
);
err(
  'hmac_payload: an encoding other than hex/base64 is refused',
  { type: 'hmac_payload', config: { header_name: 'X-Signature', encoding: 'base32' } },
  { api_secret: 'whsec-secret-value' },
  { method: 'POST', url: 'https://hooks.example.com/v1/events', body: '{}' },
  ['base32'],
);

// aws_sigv4
sigv4Vectors({ add, err, now: NOW, jsonBody: JSON_BODY });

const doc = {
  description: [
    'Strategy test vectors (issue #23): one set that the broker (apps/broker/test/strategy-vectors.test.ts) and the TypeScript, Python and Go SDKs (packages/sdk/test/sdk-strategy-vectors.test.ts, sdks/python/tests/test_strategy_vectors.py, sdks/go/strategy_vectors_test.go) all assert, so the implementations of the v1 contract strategies table cannot drift.',
    'Expected values were derived independently of every Nexus implementation: HMAC and Basic with node:crypto and Buffer; SigV4 from the AWS documentation (canonical request, string to sign, signing key) and checked against @smithy/signature-v4 and botocore SigV4Auth called directly. Never regenerate them by running a Nexus implementation.',
  ],
  format: {
    strategy:
      "the {type, config} an agent receives; config as given (defaults are the implementation's job).",
    credentials: 'the credential fields of the connection.',
    request:
      'method, URL, headers (lower-case names) and body (a UTF-8 string; HMAC and SigV4 sign its UTF-8 bytes; empty string = no body).',
    now: 'aws_sigv4 only: the signing time.',
    headers_templates:
      'headers only: config maps header names to templates; each {field} is replaced by that credential field, once (a value is never expanded again), the text around it kept.',
    'expected.headers':
      'every header of the request once the strategy is applied (the input ones kept), lower-case names compared case-insensitively; host and content-length, which transports add, are not compared.',
    'expected.url': 'the request URL without its query: unchanged by every strategy.',
    'expected.query':
      'the decoded (name, value) pairs the upstream receives; order and percent-encoding style are not significant (Go url.Values sorts by name; form encoders write a space as +).',
    'expected.canonical_request': 'aws_sigv4 only, for reading: the canonical request the signature covers.',
    'expected.error.names':
      'the strategy must refuse the request with an error whose message contains each of these names and none of the credential values.',
    sigv4_signed_headers:
      'SigV4 inputs carry x-amz-content-sha256 (the hex SHA-256 of the body) so that the four signers sign the same header set: host, x-amz-*, and the content-type given. Signing more headers is valid for AWS, but changes the exact signature.',
  },
  vectors,
};
process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
