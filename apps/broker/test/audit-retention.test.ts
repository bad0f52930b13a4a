import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config/load.ts';
import { buildContainer } from '../src/container.ts';
import { chainHash, GENESIS_HASH } from '../src/modules/audit/audit.chain.ts';
import { createAuditRetention } from '../src/modules/audit/audit.retention.ts';
import { createAuditService } from '../src/modules/audit/audit.service.ts';
import { createAuditStore } from '../src/modules/audit/audit.store.ts';
import { json, startBroker, type TestBroker } from './harness.ts';

const DAY = 86_400_000;

/** A broker keeping 30 days of audit events, exporting what it removes to a directory of its own. */
async function retentionBroker(now: () => number) {
  const exportDir = mkdtempSync(join(tmpdir(), 'nexus-audit-export-'));
  const broker = await startBroker({
    env: { NEXUS_AUDIT_RETENTION_DAYS: '30', NEXUS_AUDIT_EXPORT_DIR: exportDir },
    now,
  });
  return { broker, exportDir };
}

describe('audit retention', () => {
  let broker: TestBroker;
  let exportDir: string;
  let clock = Date.now();

  before(async () => {
    ({ broker, exportDir } = await retentionBroker(() => clock));
  });
  after(async () => {
    await broker.close();
    rmSync(exportDir, { recursive: true, force: true });
  });

  async function makeEvents(prefix: string, n: number) {
    for (let i = 0; i < n; i++) {
      const res = await broker.request({
        method: 'POST',
        url: '/providers',
        payload: { profile: { name: `${prefix}-${i}`, auth_type: 'api_key' } },
      });
      assert.equal(res.statusCode, 201, res.body);
    }
    await broker.container.audit.flush();
  }

  const allEvents = async () =>
    broker.container.db.kysely.selectFrom('audit_events').selectAll().orderBy('seq').execute();

  it('keeps everything younger than the retention', async () => {
    await makeEvents('old', 5);
    clock += 29 * DAY;
    const result = await broker.container.housekeeping.runOnce();
    assert.equal(result.auditRemoved, 0);
    assert.deepEqual(readdirSync(exportDir), []);
  });

  it('exports, then removes, the events past the retention; the rest of the chain still verifies', async () => {
    const before = await allEvents();
    clock += 2 * DAY; // the first events are now 31 days old
    await makeEvents('new', 3);
    const result = await broker.container.housekeeping.runOnce();
    assert.equal(result.auditRemoved, before.length);

    const files = readdirSync(exportDir);
    assert.equal(files.length, 1);
    const file = join(exportDir, files[0]!);
    assert.equal(statSync(file).mode & 0o777, 0o600, 'the export is owner-only');
    const exported = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    assert.deepEqual(
      exported.map((e) => e.seq),
      before.map((e) => e.seq),
    );
    // The export verifies on its own: it starts at the genesis hash and every row links and hashes.
    let prev = GENESIS_HASH;
    for (const row of exported) {
      assert.equal(row.prev_hash, prev);
      assert.equal(chainHash(row), row.hash);
      prev = row.hash;
    }

    const remaining = await allEvents();
    assert.equal(remaining.length, 3);
    assert.equal(remaining[0]!.prev_hash, exported.at(-1).hash, 'the chain continues from the export');
    const verified = await broker.container.audit.verify();
    assert.equal(verified.ok, true, verified.reason);
    assert.equal(verified.checked, 3);
    assert.equal(verified.prunedThrough, exported.at(-1).seq);

    const listed = await broker.request({ method: 'GET', url: '/audit?limit=100' });
    const ids = json<{ events: { id: string }[] }>(listed).events.map((e) => e.id);
    for (const e of exported) assert.ok(!ids.includes(e.id), 'removed events are gone from the API');
  });

  it('does not accept a moved anchor from a broker that has no retention configured', async () => {
    const config = loadConfig({ ...broker.env, NEXUS_AUDIT_RETENTION_DAYS: '0' });
    const other = buildContainer(config, { now: () => clock });
    try {
      const verified = await other.audit.verify();
      assert.equal(verified.ok, false);
      assert.match(verified.reason ?? '', /NEXUS_AUDIT_RETENTION_DAYS is 0/);
    } finally {
      await other.close();
    }
  });

  /**
   * `n` events old enough to go, then an audit service whose store runs retention once during the
   * walk: right after (`after`) or right before (`before`) its first read of events. Also says how
   * many retention removed, and the anchor as the walk began.
   */
  async function overtakenAudit(n: number, when: 'before' | 'after') {
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        broker.container.audit.record(
          { actor: 'test' },
          { action: 'test.old', resourceType: 'test', resourceId: String(i) },
        ),
      ),
    );
    clock += 31 * DAY;
    await makeEvents(`after-${when}`, 2);
    const retention = createAuditRetention({
      db: broker.container.db,
      ...broker.container.config.auditRetention,
      now: () => clock,
    });
    const store = createAuditStore(broker.container.db);
    const state = { removed: 0, anchorAtStart: (await retention.anchor()).seq, retention };
    const prune = async () => {
      if (state.removed === 0) state.removed = (await retention.runOnce()).removed;
    };
    const overtaken = {
      ...store,
      pageAscending: async (after: number, count: number) => {
        if (when === 'before') await prune();
        const page = await store.pageAscending(after, count);
        if (when === 'after') await prune();
        return page;
      },
    };
    const audit = createAuditService({
      store: overtaken,
      batchMax: 100,
      anchor: retention.anchor,
      retentionEnabled: true,
    });
    return { audit, state };
  }

  it('a verify that retention overtakes goes on from the new anchor, not a false alarm', async () => {
    // More old events than one page of the walk (1000), so that retention removes rows ahead of it.
    const { audit, state } = await overtakenAudit(1500, 'after');
    const { retention } = state;
    const result = await audit.verify();
    assert.ok(state.removed > 1000, `retention removed ${state.removed} events while the walk ran`);
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(result.complete, true);
    assert.equal(result.prunedThrough, (await retention.anchor()).seq);
    // Tampering after the anchor is still found.
    const [first] = await broker.container.db.kysely
      .selectFrom('audit_events')
      .select('seq')
      .orderBy('seq')
      .limit(1)
      .execute();
    await broker.container.db.kysely
      .updateTable('audit_events')
      .set({ actor: 'someone-else' })
      .where('seq', '=', first!.seq)
      .execute();
    const tampered = await broker.container.audit.verify();
    assert.equal(tampered.ok, false);
    assert.equal(tampered.brokenAt, first!.seq);
  });

  it('a verify resumed from an event retention removes meanwhile starts from the new anchor', async () => {
    const { audit, state } = await overtakenAudit(50, 'before');
    const from = state.anchorAtStart + 10; // inside what retention is about to remove
    const result = await audit.verify(undefined, { fromSeq: from });
    assert.ok(state.removed >= 50, `retention removed ${state.removed}`);
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(result.complete, true);
  });

  it('still detects tampering with what remains, and a second run removes nothing new', async () => {
    assert.equal((await broker.container.housekeeping.runOnce()).auditRemoved, 0);
    const [first] = await allEvents();
    await broker.container.db.kysely
      .updateTable('audit_events')
      .set({ actor: 'someone-else' })
      .where('seq', '=', first!.seq)
      .execute();
    const verified = await broker.container.audit.verify();
    assert.equal(verified.ok, false);
    assert.equal(verified.brokenAt, first!.seq);
  });
});

describe('audit verify at the end of the log', () => {
  let broker: TestBroker;
  let exportDir: string;
  let clock = Date.now();
  before(async () => {
    ({ broker, exportDir } = await retentionBroker(() => clock));
  });
  after(async () => {
    await broker.close();
    rmSync(exportDir, { recursive: true, force: true });
  });

  const record = (n: number, action: string) =>
    Promise.all(
      Array.from({ length: n }, (_, i) =>
        broker.container.audit.record(
          { actor: 'test' },
          { action, resourceType: 'test', resourceId: String(i) },
        ),
      ),
    );

  it('a verify that retention overtakes up to the head (an idle log) is not a false alarm', async () => {
    await record(1500, 'test.idle');
    clock += 31 * DAY; // nothing written since: the whole log is past retention
    const retention = createAuditRetention({
      db: broker.container.db,
      ...broker.container.config.auditRetention,
      now: () => clock,
    });
    const store = createAuditStore(broker.container.db);
    let pages = 0;
    let removed = 0;
    const audit = createAuditService({
      store: {
        ...store,
        // Housekeeping runs between the walk's first and second page.
        pageAscending: async (afterSeq: number, count: number) => {
          if (++pages === 2) removed = (await retention.runOnce()).removed;
          return store.pageAscending(afterSeq, count);
        },
      },
      batchMax: 100,
      anchor: retention.anchor,
      retentionEnabled: true,
    });
    const result = await audit.verify();
    assert.equal(removed, 1500, 'retention removed the whole log while the walk ran');
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(result.complete, true);
  });
  it('a resumed verify reports a deleted tail, as a whole walk does', async () => {
    await record(30, 'test.tail');
    const first = json<{ ok: boolean; next_from_seq: number; head_seq: number }>(
      await broker.request({ method: 'GET', url: '/audit/verify?limit=20' }),
    );
    assert.equal(first.ok, true);
    // The newest events deleted from where the verifier will resume, the head row left as it was.
    await broker.container.db.kysely
      .deleteFrom('audit_events')
      .where('seq', '>=', first.next_from_seq - 1)
      .execute();
    assert.equal((await broker.container.audit.verify()).ok, false, 'a whole walk finds it');
    const resumed = json<{ ok: boolean; broken_at: number; reason: string }>(
      await broker.request({ method: 'GET', url: `/audit/verify?from_seq=${first.next_from_seq}` }),
    );
    assert.equal(resumed.ok, false, JSON.stringify(resumed));
    assert.equal(resumed.broken_at, first.next_from_seq - 1);
    assert.match(resumed.reason, /events were deleted/);
  });
});
