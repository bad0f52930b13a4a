/**
 * The token path's performance machinery keeps its guarantees: concurrent reads share queries but
 * never answer from before they were asked (a revocation is seen at once), prepared statements
 * survive a migration that changes their table, audit batches written in one statement keep one
 * verifiable chain when another writer moves its head, and admin keys are looked up per request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { loadConfig } from '../src/config/load.ts';
import { buildContainer } from '../src/container.ts';
import { createAuditService } from '../src/modules/audit/audit.service.ts';
import { createAuditStore } from '../src/modules/audit/audit.store.ts';
import { json, startBroker, type TestBroker } from './harness.ts';

const ctx = { actor: 'test', ip: '127.0.0.1', requestId: 'req-token-path' };

describe('token path: coalesced reads, prepared statements, one-statement audit batches', () => {
  let broker: TestBroker;
  let users = 0;
  before(async () => {
    broker = await startBroker();
    const res = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: { name: 'keyed', auth_type: 'api_key' } },
    });
    assert.equal(res.statusCode, 201, res.body);
  });
  after(() => broker.close());

  async function connect(apiKey: string): Promise<string> {
    const started = json<{ state: string; connection_id: string }>(
      await broker.request({
        method: 'POST',
        url: '/v1/request-connection',
        payload: { user_id: `user-${++users}`, provider_name: 'keyed', return_url: 'http://localhost/done' },
      }),
    );
    const captured = await broker.request({
      method: 'POST',
      url: '/v1/capture-credential',
      key: null,
      payload: { state: started.state, credentials: { api_key: apiKey } },
    });
    assert.equal(captured.statusCode, 200, captured.body);
    return started.connection_id;
  }

  const getToken = (id: string, key?: string) =>
    broker.request({ method: 'GET', url: `/v1/token/${id}`, ...(key === undefined ? {} : { key }) });

  it('answers many concurrent reads of several connections, each audited, on one intact chain', async () => {
    const ids = [await connect('sk_one'), await connect('sk_two'), await connect('sk_three')];
    const secrets = ['sk_one', 'sk_two', 'sk_three'];
    const responses = await Promise.all(Array.from({ length: 150 }, (_, i) => getToken(ids[i % 3]!)));
    responses.forEach((res, i) => {
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(json(res).credentials, { api_key: secrets[i % 3] });
      assert.equal(json(res).connection_id, ids[i % 3]);
    });
    for (const id of ids) {
      const reads = await broker.container.audit.query({
        action: 'connection.token_read',
        resourceType: 'connection',
        resourceId: id,
        limit: 500,
      });
      assert.equal(reads.length, 50);
    }
    const verify = await broker.container.audit.verify();
    assert.equal(verify.ok, true, verify.reason);
  });

  it('a read asked for after a revocation was committed never answers with the credential', async () => {
    const id = await connect('sk_revoked');
    // Reads already on their way may still see the connection active; that is their moment.
    const racing = Array.from({ length: 30 }, () => getToken(id));
    const revoked = await broker.request({ method: 'DELETE', url: `/v1/connections/${id}` });
    assert.equal(revoked.statusCode, 200, revoked.body);
    const afterwards = await Promise.all(Array.from({ length: 30 }, () => getToken(id)));
    for (const res of afterwards) {
      assert.equal(res.statusCode, 409, res.body);
      assert.equal(json(res).error, 'connection_not_active');
    }
    for (const res of await Promise.all(racing)) assert.ok([200, 409].includes(res.statusCode), res.body);
  });

  it('keeps answering after a migration adds a column under its prepared statements', async () => {
    const id = await connect('sk_migrated');
    // Prepare the statements on several pooled connections first.
    for (const res of await Promise.all(Array.from({ length: 40 }, () => getToken(id))))
      assert.equal(res.statusCode, 200, res.body);
    const db = broker.container.db.kysely;
    await sql`ALTER TABLE connections ADD COLUMN test_extra TEXT`.execute(db);
    try {
      for (let round = 0; round < 3; round++) {
        for (const res of await Promise.all(Array.from({ length: 40 }, () => getToken(id)))) {
          assert.equal(res.statusCode, 200, res.body);
          assert.deepEqual(json(res).credentials, { api_key: 'sk_migrated' });
        }
      }
    } finally {
      await sql`ALTER TABLE connections DROP COLUMN test_extra`.execute(db);
    }
  });

  it('hashes a batch again when another writer moved the head since its last batch', async () => {
    const db = broker.container.db;
    const a = createAuditService({ store: createAuditStore(db), batchMax: 20 });
    const b = createAuditService({ store: createAuditStore(db), batchMax: 20 });
    const event = (i: number) => ({ action: 'head.moved', resourceType: 'test', resourceId: String(i) });
    await a.record(ctx, event(0));
    await b.record(ctx, event(1)); // a's idea of the head is now stale
    await a.record(ctx, event(2));
    await Promise.all(Array.from({ length: 60 }, (_, i) => (i % 2 ? a : b).record(ctx, event(3 + i))));
    const verify = await broker.container.audit.verify();
    assert.equal(verify.ok, true, verify.reason);
    const written = await broker.container.audit.query({ action: 'head.moved', limit: 500 });
    assert.deepEqual(
      written.map((e) => Number(e.resource_id)).sort((x, y) => x - y),
      Array.from({ length: 63 }, (_, i) => i),
    );
  });

  it('an admin key revoked by another process fails on its very next request', async () => {
    const id = await connect('sk_keyed');
    const created = json<{ id: string; key: string }>(
      await broker.request({
        method: 'POST',
        url: '/admin/v1/admin-keys',
        payload: { name: 'soon-revoked' },
      }),
    );
    for (const res of await Promise.all(Array.from({ length: 20 }, () => getToken(id, created.key))))
      assert.equal(res.statusCode, 200, res.body);
    // Another container on the same database stands for the CLI or another replica.
    const other = buildContainer(loadConfig(broker.env));
    try {
      await other.adminKeys.revoke(ctx, created.id);
    } finally {
      await other.close();
    }
    assert.equal((await getToken(id, created.key)).statusCode, 401);
  });
});
