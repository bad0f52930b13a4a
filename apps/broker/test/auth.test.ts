import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { json, startBroker, type TestBroker } from './harness.ts';

describe('admin authentication', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker();
  });
  after(() => broker.close());

  it('answers 401 with the error envelope when no key is sent', async () => {
    const res = await broker.request({ method: 'GET', url: '/providers', key: null });
    assert.equal(res.statusCode, 401);
    const body = json(res);
    assert.equal(body.error, 'unauthorized');
    assert.equal(typeof body.request_id, 'string');
    assert.equal(res.headers['www-authenticate'], 'Bearer');
  });

  it('answers 401 for a wrong key, in either header', async () => {
    for (const headers of [
      { 'x-api-key': 'not-the-key-at-all-0000000' },
      { authorization: 'Bearer not-the-key-at-all-0000000' },
    ]) {
      const res = await broker.request({ method: 'GET', url: '/providers', key: null, headers });
      assert.equal(res.statusCode, 401);
      assert.equal(json(res).error, 'unauthorized');
    }
  });

  it('accepts the key as a bearer token', async () => {
    const res = await broker.request({
      method: 'GET',
      url: '/providers',
      key: null,
      headers: { authorization: `Bearer ${broker.adminKey}` },
    });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(json(res), []);
  });

  it('keeps /health, /ready and /openapi.json public', async () => {
    for (const url of ['/health', '/ready', '/openapi.json']) {
      const res = await broker.request({ method: 'GET', url, key: null });
      assert.equal(res.statusCode, 200, url);
    }
  });
});
