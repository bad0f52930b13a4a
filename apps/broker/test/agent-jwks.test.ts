/**
 * Issue #18, agent `jwks`: keys are checked as keys (known kty, its members and sizes, nothing
 * nested, no private members, a few keys at most), and a key set stored before these checks, even
 * one nested 1,000 levels deep, no longer breaks reading agents or `nexus export`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, type KeyObject, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from './cli-helpers.ts';
import { json, startBroker, type TestBroker } from './harness.ts';

const publicJwk = (type: 'ec' | 'ed25519' | 'rsa', options: Record<string, unknown> = {}) =>
  (generateKeyPairSync as unknown as (t: string, o: unknown) => { publicKey: KeyObject })(
    type,
    options,
  ).publicKey.export({ format: 'jwk' }) as Record<string, unknown>;

const nested = (levels: number, inner: unknown = 'x'): unknown => {
  let value = inner;
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
};

describe('agent jwks are checked as keys', () => {
  let broker: TestBroker;
  let n = 0;
  const register = (keys: unknown[]) =>
    broker.request({
      method: 'POST',
      url: '/admin/v1/agents',
      payload: { agent_id: `keyed-${++n}`, allowed_scopes: [], jwks: { keys } },
    });

  before(async () => {
    broker = await startBroker();
  });
  after(async () => broker?.close());

  it('accepts EC P-256/P-384, Ed25519 and RSA ≥ 2048 public keys, with fitting alg, kid and use', async () => {
    const keys = [
      { ...publicJwk('ec', { namedCurve: 'P-256' }), kid: 'ec256', alg: 'ES256', use: 'sig' },
      { ...publicJwk('ec', { namedCurve: 'P-384' }), alg: 'ES384' },
      { ...publicJwk('ed25519'), kid: 'ed', alg: 'EdDSA' },
      { ...publicJwk('rsa', { modulusLength: 2048 }), alg: 'PS256', key_ops: ['verify'], ext: true },
    ];
    const created = await register(keys);
    assert.equal(created.statusCode, 201, created.body);
    assert.deepEqual(json<{ jwks: unknown }>(created).jwks, { keys });
  });

  it('refuses what is not a public signing key the token endpoint can use, naming the problem', async () => {
    const ec = publicJwk('ec', { namedCurve: 'P-256' });
    const ed = publicJwk('ed25519');
    const cases: [string, unknown[], RegExp][] = [
      ['unknown kty', [{ ...ec, kty: 'oct' }], /kty must be RSA, EC or OKP/],
      ['no kty', [{ x: ec.x, y: ec.y, crv: 'P-256' }], /kty must be RSA, EC or OKP/],
      ['EC without y', [{ kty: 'EC', crv: 'P-256', x: ec.x }], /body\.jwks\.keys\.0\.y/],
      ['a curve the broker does not verify', [{ ...ec, crv: 'P-521' }], /crv/],
      ['short coordinate', [{ ...ec, x: String(ec.x).slice(0, 40) }], /43 base64url characters/],
      ['a point off the curve', [{ ...ec, y: String(ec.x) }], /does not import/],
      ['RSA 1024', [publicJwk('rsa', { modulusLength: 1024 })], /body\.jwks\.keys\.0\.n/],
      ['alg of another key type', [{ ...ed, alg: 'ES256' }], /alg ES256 does not fit/],
      ['an algorithm not accepted', [{ ...ec, alg: 'HS256' }], /alg/],
      ['an encryption key', [{ ...ec, use: 'enc' }], /use/],
      ['a nested member', [{ ...ec, x: nested(3) }], /body\.jwks\.keys\.0\.x/],
      ['a member a public key does not have', [{ ...ec, extra: 'x' }], /extra/],
      ['an object nested in an unknown member', [{ ...ec, extra: nested(20) }], /extra/],
      ['a private key', [{ ...ec, d: 'AAAA' }], /public key only/],
      ['too many keys', Array.from({ length: 11 }, () => ec), /body\.jwks\.keys/],
      ['not an object', ['a key'], /body\.jwks\.keys\.0/],
    ];
    for (const [what, keys, message] of cases) {
      const refused = await register(keys);
      assert.equal(refused.statusCode, 400, `${what}: ${refused.body}`);
      assert.equal(json(refused).error, 'invalid_request', what);
      assert.match(refused.body, message, what);
    }
    const patched = await broker.request({
      method: 'PATCH',
      url: '/admin/v1/agents/keyed-1',
      payload: { jwks: { keys: [{ ...ec, kty: 'RSA' }] } },
    });
    assert.equal(patched.statusCode, 400, 'an update is checked the same way');
  });

  it('a key set stored before these checks, 1,000 levels deep, is shown flat and exports', async () => {
    const created = await register([publicJwk('ed25519')]);
    assert.equal(created.statusCode, 201, created.body);
    const { id } = json<{ id: string }>(created);
    // What an older broker stored: a private member, a nested member, and 1,000 levels of nesting.
    const good = { ...publicJwk('ec', { namedCurve: 'P-256' }), kid: 'kept' };
    const stored = { keys: [{ ...good, d: 'secret-part', deep: nested(1_000) }, nested(1_000)] };
    await broker.container.db.kysely
      .updateTable('agents')
      .set({ jwks: JSON.stringify(stored) })
      .where('id', '=', id)
      .execute();

    // The operator CLI's export reads every agent and writes YAML: one such row broke it for all.
    const url = await broker.app.listen({ port: 0, host: '127.0.0.1' });
    const child = spawn(process.execPath, [join(REPO_ROOT, 'packages/cli/bin/nexus.js'), 'export'], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: broker.db.dataDir,
        NEXUS_URL: url,
        API_KEY: broker.adminKey,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += String(d);
    });
    child.stderr.on('data', (d) => {
      stderr += String(d);
    });
    const code = await new Promise((done) => child.on('close', done));
    assert.equal(code, 0, `nexus export: ${stderr}`);
    assert.match(stdout, /kid: kept/);
    assert.doesNotMatch(stdout, /secret-part/);
    const one = await broker.request({ method: 'GET', url: `/admin/v1/agents/${id}` });
    assert.equal(one.statusCode, 200, one.body);
    assert.deepEqual(json<{ jwks: unknown }>(one).jwks, { keys: [good, {}] });
    const all = await broker.request({ method: 'GET', url: '/admin/v1/agents' });
    assert.equal(all.statusCode, 200, all.body);
  });

  it('an RSA key whose exponent lets anyone sign is refused, and a stored one verifies nothing', async () => {
    // Security review (2026-12-07): e = 1 passed registration, and with it the "signature" of an
    // assertion is its padded hash, which anyone can write without a private key.
    const rsa = publicJwk('rsa', { modulusLength: 2048 });
    for (const e of ['AQ', 'Aw', 'AQAC']) {
      const refused = await register([{ ...rsa, e, alg: 'RS256' }]);
      assert.equal(refused.statusCode, 400, `e=${e}: ${refused.body}`);
      assert.match(refused.body, /odd public exponent e of at least 65537/);
    }
    // A key set stored before the check: the forged assertion gets no token.
    const created = await register([{ ...rsa, alg: 'RS256', kid: 'k' }]);
    assert.equal(created.statusCode, 201, created.body);
    const agent = json<{ id: string; agent_id: string }>(created);
    await broker.container.db.kysely
      .updateTable('agents')
      .set({ jwks: JSON.stringify({ keys: [{ kty: 'RSA', n: rsa.n, e: 'AQ', alg: 'RS256', kid: 'k' }] }) })
      .where('id', '=', agent.id)
      .execute();
    const b64 = (value: Buffer | string) => Buffer.from(value).toString('base64url');
    const t = Math.floor(Date.now() / 1000);
    const header = b64(JSON.stringify({ alg: 'RS256', kid: 'k' }));
    const claims = {
      iss: agent.agent_id,
      sub: agent.agent_id,
      aud: `${broker.container.config.http.baseUrl}/oauth/token`,
      iat: t,
      exp: t + 60,
      jti: randomUUID(),
    };
    const payload = b64(JSON.stringify(claims));
    // PKCS#1 v1.5 padding of the SHA-256 digest, the whole modulus long: with e = 1, that is the signature.
    const digestInfo = Buffer.concat([
      Buffer.from('3031300d060960864801650304020105000420', 'hex'),
      createHash('sha256').update(`${header}.${payload}`).digest(),
    ]);
    const padded = Buffer.concat([
      Buffer.from([0, 1]),
      Buffer.alloc(256 - 3 - digestInfo.length, 0xff),
      Buffer.from([0]),
      digestInfo,
    ]);
    const forged = await broker.request({
      method: 'POST',
      url: '/oauth/token',
      key: null,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: `${header}.${payload}.${b64(padded)}`,
      }).toString(),
    });
    assert.equal(forged.statusCode, 401, forged.body);
    assert.equal(json(forged).error, 'invalid_client');
  });

  it('refuses keys inline and from a URL at once, where the inline ones would silently win', async () => {
    const ec = publicJwk('ec', { namedCurve: 'P-256' });
    const jwksUri = 'https://keys.example.test/jwks.json';
    const both = await broker.request({
      method: 'POST',
      url: '/admin/v1/agents',
      payload: { agent_id: 'both-keys', allowed_scopes: [], jwks: { keys: [ec] }, jwks_uri: jwksUri },
    });
    assert.equal(both.statusCode, 400, both.body);
    assert.match(both.body, /jwks or jwks_uri, not both/);
    const created = await register([ec]);
    assert.equal(created.statusCode, 201, created.body);
    const { agent_id } = json<{ agent_id: string }>(created);
    // Moving away from a key (a compromised one) by naming a URL alone would have kept the key.
    const patch = (payload: Record<string, unknown>) =>
      broker.request({ method: 'PATCH', url: `/admin/v1/agents/${agent_id}`, payload });
    const kept = await patch({ jwks_uri: jwksUri });
    assert.equal(kept.statusCode, 400, kept.body);
    assert.match(kept.body, /set the other to null/);
    const moved = await patch({ jwks: null, jwks_uri: jwksUri });
    assert.equal(moved.statusCode, 200, moved.body);
    assert.deepEqual(
      [json<{ jwks: unknown }>(moved).jwks, json<{ jwks_uri: unknown }>(moved).jwks_uri],
      [null, jwksUri],
    );
  });
});
