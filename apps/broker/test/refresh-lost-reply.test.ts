/**
 * The write that keeps a refresh's answer commits, but its reply is lost (the connection to the
 * database drops after COMMIT: the driver reports ECONNRESET). It is tried again through the
 * outage (refresh-record.ts), finds its own write already done (the lease released, so the retry
 * changes nothing), and must still count as stored: the row holds the new tokens. The fault is
 * made around the real store, on a real database, after the real write committed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createConnectionsStore } from '../src/modules/connections/connections.store.ts';
import { createOutcomeRecorder } from '../src/modules/connections/refresh-record.ts';
import { defaultRefreshSchedule } from '../src/modules/connections/refresh-schedule.ts';
import { DIALECT, json, startBroker, type TestBroker } from './harness.ts';

describe(`a refresh whose stored outcome's reply was lost (${DIALECT})`, () => {
  let b: TestBroker;
  let id = '';
  before(async () => {
    b = await startBroker();
    await b.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: { name: 'crm', auth_type: 'api_key' } },
    });
    const started = json<{ state: string; connection_id: string }>(
      await b.request({
        method: 'POST',
        url: '/v1/request-connection',
        payload: { user_id: 'alice', provider_name: 'crm', return_url: 'http://localhost:3000/done' },
      }),
    );
    const captured = await b.request({
      method: 'POST',
      url: '/v1/capture-credential',
      key: null,
      payload: { state: started.state, credentials: { api_key: 'k' } },
    });
    assert.equal(captured.statusCode, 200, captured.body);
    id = started.connection_id;
  });
  after(() => b.close());

  it('counts as stored, audited as a refresh, not as discarded', async () => {
    const real = createConnectionsStore(b.container.db, { refreshLeaseMs: 45_000 });
    let writes = 0;
    const store = {
      ...real,
      async completeLease(...args: Parameters<typeof real.completeLease>) {
        writes++;
        const done = await real.completeLease(...args);
        if (writes === 1) throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
        return done;
      },
    };
    const audits: string[] = [];
    const sealed = new Uint8Array([1, 2, 3, 4]);
    const recorder = createOutcomeRecorder({
      store,
      credentials: {
        write: async () => sealed,
        discard: async () => {},
        remove: async () => {},
        mode: 'database',
      } as never,
      audit: { record: async (_ctx, event) => void audits.push(event.action) },
      schedule: defaultRefreshSchedule,
      emit: async () => {},
      owner: 'replica-1',
      now: Date.now,
      sleep: async () => {},
    });
    const row = (await real.find(id))!;
    assert.ok(await real.acquireLease(id, 'lease-1', row.version, { leaseMs: 45_000, graceMs: 45_000 }));
    const t = Date.now();
    await recorder.refreshed(
      row,
      'lease-1',
      { kind: 'oauth2', access_token: 'old', token_type: 'bearer', refresh_token: 'r1' },
      { access_token: 'new', token_type: 'bearer', refresh_token: 'r2', expires_in: 3600 } as never,
      t,
    );
    assert.equal(writes, 2, 'tried again through the outage');
    const after = (await real.find(id))!;
    assert.equal(after.last_refreshed_at, t);
    assert.deepEqual(Buffer.from(after.credentials!), Buffer.from(sealed));
    assert.equal(after.refresh_lease_owner, null);
    assert.deepEqual(audits, ['connection.refreshed']);
  });
});
