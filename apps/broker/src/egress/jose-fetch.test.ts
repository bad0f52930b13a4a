import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createRemoteJWKSet, customFetch, exportJWK, jwtVerify, SignJWT } from 'jose';
import { joseFetch } from './jose-fetch.ts';
import { createSafeFetch } from './safe-fetch.ts';

describe('remote JWKS through the egress guard', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  let requests = 0;
  let url: string;
  let token: string;
  const server = createServer(async (_req, res) => {
    requests++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] }));
  });

  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
    token = await new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(privateKey);
  });
  after(() => server.close());

  const keySet = (allowCidrs: string[]) =>
    createRemoteJWKSet(new URL(url), {
      [customFetch]: joseFetch(createSafeFetch({ allowCidrs, timeoutMs: 2000, maxRedirects: 0 })),
    });

  test('refuses to fetch keys from a special-purpose address: no request is made', async () => {
    requests = 0;
    await assert.rejects(jwtVerify(token, keySet([])));
    assert.equal(requests, 0);
  });

  test('fetches and verifies when the operator allows the range', async () => {
    const { payload } = await jwtVerify(token, keySet(['127.0.0.1/32']));
    assert.equal(payload.sub, 'u');
    assert.equal(requests, 1);
  });
});
