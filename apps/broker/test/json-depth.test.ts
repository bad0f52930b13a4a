/**
 * Issue #18: a JSON body nested thousands of levels deep (6,000 levels is a 36 KB body) is refused
 * with 400 `invalid_request` on every route, before it is parsed, instead of a 500 from a stack
 * overflow somewhere in validation or storage.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MAX_JSON_DEPTH, nestedDeeperThan } from '../src/http/json-body.ts';
import { json, startBroker, type TestBroker } from './harness.ts';

const deepObject = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
const deepArray = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;

describe('nestedDeeperThan', () => {
  it('counts objects and arrays, not brackets inside strings', () => {
    assert.equal(nestedDeeperThan(deepObject(32), 32), false);
    assert.equal(nestedDeeperThan(deepObject(33), 32), true);
    assert.equal(nestedDeeperThan(deepArray(33), 32), true);
    assert.equal(nestedDeeperThan(`{"a":"${'['.repeat(100)}"}`, 32), false, 'brackets in a string');
    assert.equal(
      nestedDeeperThan(`{"a":"\\"${'{'.repeat(100)}"}`, 32),
      false,
      'an escaped quote does not end the string',
    );
    assert.equal(nestedDeeperThan(`[${'[],'.repeat(1000)}[]]`, 2), false, 'siblings are not depth');
  });
});

describe('deeply nested JSON bodies', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker({ env: { NEXUS_BODY_LIMIT_BYTES: String(1024 * 1024) } });
  });
  after(async () => broker?.close());

  const send = (method: 'POST' | 'PATCH' | 'PUT', url: string, payload: string, key?: string | null) =>
    broker.request({
      method,
      url,
      payload,
      headers: { 'content-type': 'application/json' },
      ...(key === undefined ? {} : { key }),
    });

  it('6,000 levels get 400 invalid_request on every kind of route, never 500', async () => {
    const levels = 6_000;
    const inKey = (field: string, inner: string) => `{${field}:${inner}}`;
    const bodies: [string, 'POST' | 'PATCH' | 'PUT', string, string, string | null | undefined][] = [
      [
        'agent jwks',
        'POST',
        '/admin/v1/agents',
        `{"agent_id":"deep","allowed_scopes":[],"jwks":{"keys":[${deepObject(levels)}]}}`,
        undefined,
      ],
      [
        'agent update',
        'PATCH',
        '/admin/v1/agents/deep',
        inKey('"description"', deepArray(levels)),
        undefined,
      ],
      [
        'provider',
        'POST',
        '/providers',
        `{"profile":{"name":"deep","auth_type":"api_key","params":${deepObject(levels)}}}`,
        undefined,
      ],
      ['request-connection', 'POST', '/v1/request-connection', deepArray(levels), undefined],
      ['public capture', 'POST', '/v1/capture-credential', inKey('"state"', deepObject(levels)), null],
      [
        'user-secrets resolve',
        'POST',
        '/api/v2/secrets/resolve?user_id=u1',
        inKey('"config"', deepArray(levels)),
        undefined,
      ],
    ];
    for (const [what, method, url, payload, key] of bodies) {
      assert.ok(payload.length >= 12_000, `${what}: a body of ${payload.length} bytes`);
      const res = await send(method, url, payload, key);
      assert.equal(res.statusCode, 400, `${what}: ${res.body.slice(0, 300)}`);
      assert.equal(json(res).error, 'invalid_request', what);
      assert.match(json<{ message: string }>(res).message, /nested too deeply \(at most 32 levels/, what);
    }
    assert.equal(
      (await broker.request({ method: 'GET', url: '/admin/v1/agents/deep' })).statusCode,
      404,
      'nothing was stored',
    );
    const logs = broker.logs.join('\n');
    assert.doesNotMatch(logs, /Maximum call stack|"level":50/, 'no failure was logged');
  });

  it('a body within the limit is parsed as before', async () => {
    assert.equal(MAX_JSON_DEPTH, 32);
    // The deepest config user-secrets resolves (16 levels under `config`) still reaches its own check.
    const res = await send(
      'POST',
      '/providers',
      `{"profile":{"name":"nested-ok","auth_type":"api_key","params":{"credential_schema":${deepObject(20).replace('"a":1', '"a":"x"')}}}}`,
    );
    assert.notEqual(res.statusCode, 500, res.body);
    assert.doesNotMatch(res.body, /nested too deeply/);
    const plain = await send('POST', '/v1/request-connection', '{"user_id":"u1"}');
    assert.equal(plain.statusCode, 400);
    assert.doesNotMatch(plain.body, /nested too deeply/, 'an ordinary invalid body names its fields');
    const broken = await send('POST', '/v1/request-connection', '{"user_id":');
    assert.equal(json<{ message: string }>(broken).message, 'The body is not valid JSON.');
    const poisoned = await send('POST', '/v1/request-connection', '{"__proto__":{"x":1}}');
    assert.equal(poisoned.statusCode, 400, 'prototype poisoning is still refused');
  });
});
