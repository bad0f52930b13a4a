/**
 * Each strategy applied offline, as the contract table says (the testbed suite proves the same
 * against an upstream that checks them), and the secret-reference helpers.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  applyStrategy,
  findSecretReferences,
  type OutgoingRequest,
  replaceSecretReferences,
  StrategyError,
} from '../src/index.ts';

const base = (body?: Uint8Array): OutgoingRequest => ({
  url: new URL('https://api.example.com/v1/items?x=1'),
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body,
});
const now = () => Date.UTC(2026, 0, 2, 3, 4, 5);

describe('applyStrategy', () => {
  test('oauth2: Authorization Bearer', async () => {
    const out = await applyStrategy({ type: 'oauth2', config: {} }, { access_token: 'at' }, base(), { now });
    assert.equal(out.headers.authorization, 'Bearer at');
  });

  test('header: header_name, value_prefix and credential_field, with defaults', async () => {
    const out = await applyStrategy(
      {
        type: 'header',
        config: { header_name: 'X-Api-Key', credential_field: 'token', value_prefix: 'Key ' },
      },
      { token: 'v' },
      base(),
      { now },
    );
    assert.equal(out.headers['x-api-key'], 'Key v');
    const def = await applyStrategy({ type: 'header', config: {} }, { api_key: 'k' }, base(), { now });
    assert.equal(def.headers.authorization, 'k');
  });

  test('query_param: the parameter is added and the others kept', async () => {
    const out = await applyStrategy(
      { type: 'query_param', config: { param_name: 'key' } },
      { api_key: 'k&1' },
      base(),
      {
        now,
      },
    );
    assert.equal(out.url.searchParams.get('key'), 'k&1');
    assert.equal(out.url.searchParams.get('x'), '1');
    await assert.rejects(
      applyStrategy({ type: 'query_param', config: {} }, { api_key: 'k' }, base(), { now }),
      StrategyError,
    );
  });

  test('basic_auth: username_field / password_field', async () => {
    const out = await applyStrategy(
      { type: 'basic_auth', config: { username_field: 'u', password_field: 'p' } },
      { u: 'alice', p: 'pä:ss' },
      base(),
      { now },
    );
    assert.equal(out.headers.authorization, `Basic ${Buffer.from('alice:pä:ss').toString('base64')}`);
  });

  test('hmac_payload: over the exact body bytes, sha256/sha1, hex/base64', async () => {
    const body = new Uint8Array([0, 255, 10, 13, 0xc3, 0x28]); // not valid UTF-8 on purpose
    for (const [algo, encoding] of [
      ['sha256', 'hex'],
      ['sha1', 'base64'],
    ] as const) {
      const out = await applyStrategy(
        { type: 'hmac_payload', config: { header_name: 'X-Sig', algo, encoding } },
        { api_secret: 's3' },
        base(body),
        { now },
      );
      assert.equal(out.headers['x-sig'], createHmac(algo, 's3').update(body).digest(encoding));
    }
    const empty = await applyStrategy(
      { type: 'hmac_payload', config: { header_name: 'X-Sig' } },
      { api_secret: 's3' },
      base(),
      { now },
    );
    assert.equal(empty.headers['x-sig'], createHmac('sha256', 's3').update('').digest('hex'));
  });

  test('aws_sigv4: signed by the AWS signer with region, service and the session token', async () => {
    const out = await applyStrategy(
      { type: 'aws_sigv4', config: { region: 'eu-west-1', service: 'execute-api' } },
      { access_key: 'AKIDEXAMPLE', secret_key: 'secret', session_token: 'sess' },
      base(new TextEncoder().encode('{"a":1}')),
      { now },
    );
    assert.match(
      out.headers.authorization!,
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/20260102\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$/,
    );
    assert.match(out.headers.authorization!, /SignedHeaders=[^,]*host/);
    assert.equal(out.headers['x-amz-date'], '20260102T030405Z');
    assert.equal(out.headers['x-amz-security-token'], 'sess');
    assert.equal(out.headers.host, undefined, 'fetch sets Host from the URL');
    assert.equal(out.headers['content-type'], 'application/json');
  });

  test('a missing credential field or unknown type is a StrategyError naming the field, not the value', async () => {
    const error = await applyStrategy({ type: 'basic_auth', config: {} }, { username: 'u' }, base(), {
      now,
    }).catch((e: unknown) => e);
    assert.ok(error instanceof StrategyError);
    assert.match(error.message, /password/);
    await assert.rejects(
      // biome-ignore lint/suspicious/noExplicitAny: an unknown type from a newer broker
      applyStrategy({ type: 'mtls' as any, config: {} }, {}, base(), { now }),
      StrategyError,
    );
  });
});

describe('secret references', () => {
  test('found and replaced in nested objects and arrays; other strings untouched', () => {
    const config = {
      db: { password: 'nexus-secret:db-password', user: 'app', port: 5432 },
      list: ['nexus-secret:api.key', 'plain', { deep: ['nexus-secret:db-password'] }],
      notAReference: 'prefix nexus-secret:db-password',
      nothing: null,
    };
    assert.deepEqual(findSecretReferences(config).sort(), ['api.key', 'db-password']);
    const out = replaceSecretReferences(config, new Map([['db-password', 'pw']]));
    assert.deepEqual(out, {
      db: { password: 'pw', user: 'app', port: 5432 },
      list: ['nexus-secret:api.key', 'plain', { deep: ['pw'] }],
      notAReference: 'prefix nexus-secret:db-password',
      nothing: null,
    });
    assert.equal(config.db.password, 'nexus-secret:db-password', 'the input is not changed');
  });
});
