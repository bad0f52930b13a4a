import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuditEventsTable } from '../../db/schema.ts';
import { createAuditService } from './audit.service.ts';
import type { AuditStore } from './audit.store.ts';

type Head = { seq: number; hash: string };

/** A store whose appends wait until the test settles them, keeping what it committed. */
function controlledStore() {
  const committed: AuditEventsTable[] = [];
  const pending: { rows: number; settle: (error?: Error) => void }[] = [];
  let head: Head = { seq: 0, hash: '' };
  const store = {
    append(build: (head: Head) => AuditEventsTable[]) {
      return new Promise<void>((resolve, reject) => {
        const rows = build(head);
        pending.push({
          rows: rows.length,
          settle: (error) => {
            if (error) return reject(error);
            committed.push(...rows);
            const last = rows[rows.length - 1]!;
            head = { seq: last.seq, hash: last.hash };
            resolve();
          },
        });
      });
    },
  } as unknown as AuditStore;
  return { store, committed, pending };
}

const turn = () => new Promise((r) => setImmediate(r));
/** Lets the service run until `check` holds (a few event-loop turns at most). */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 10 && !check(); i++) await turn();
  assert.ok(check(), 'the service did not get there');
}
const ctx = { actor: 'test', requestId: 'r' };
const event = (id: string) => ({
  action: 'connection.token_read',
  resourceType: 'connection',
  resourceId: id,
});

/** A batch the database did not take: the connection ended under it (`pg_ctl stop -m fast`). */
function adminShutdown(): Error {
  return Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
}

describe('audit group commit while the database is away', () => {
  it('fails the batch and every event queued behind it at once, then starts afresh', async () => {
    const { store, committed, pending } = controlledStore();
    const audit = createAuditService({ store, batchMax: 100 });
    const first = audit.record(ctx, event('a'));
    await until(() => pending.length === 1);
    // Recorded while the first batch is being written: they wait for the next batch.
    const behind = [audit.record(ctx, event('b')), audit.record(ctx, event('c'))];
    const outcomes: string[] = [];
    for (const [i, p] of [first, ...behind].entries())
      p.then(
        () => outcomes.push(`${i} committed`),
        () => outcomes.push(`${i} failed`),
      );
    pending[0]!.settle(adminShutdown());
    for (let i = 0; i < 5; i++) await turn();
    // Failed at once, all three: no second append was tried for the queued events.
    assert.deepEqual(outcomes.sort(), ['0 failed', '1 failed', '2 failed']);
    assert.equal(pending.length, 1);

    // The database is back: the next event is written, on its own.
    const later = audit.record(ctx, event('d'));
    await until(() => pending.length === 2);
    pending[1]!.settle();
    await later;
    assert.deepEqual(
      committed.map((r) => r.resource_id),
      ['d'],
    );
    assert.equal(committed[0]!.seq, 1);
  });

  it('after any other failure, writes the queued events in their own batch', async () => {
    const { store, committed, pending } = controlledStore();
    const audit = createAuditService({ store, batchMax: 100 });
    const first = audit.record(ctx, event('a'));
    await until(() => pending.length === 1);
    const behind = audit.record(ctx, event('b'));
    pending[0]!.settle(new Error('invalid byte sequence for encoding "UTF8"'));
    await assert.rejects(first);
    await until(() => pending.length === 2);
    pending[1]!.settle();
    await behind;
    assert.deepEqual(
      committed.map((r) => r.resource_id),
      ['b'],
    );
  });
});

describe('audit events written one by one after a refused batch', () => {
  it('stop at the first write that finds the database away, and fail the rest at once', async () => {
    const { store, committed, pending } = controlledStore();
    const audit = createAuditService({ store, batchMax: 100 });
    const outcomes = new Map<string, string>();
    const track = (id: string) =>
      audit.record(ctx, event(id)).then(
        () => outcomes.set(id, 'committed'),
        () => outcomes.set(id, 'failed'),
      );
    const batch = ['a', 'b', 'c', 'd'].map(track);
    await until(() => pending.length === 1);
    const behind = track('e');
    // Refused whole for a reason of its own (a deadlock): each event is tried alone.
    pending[0]!.settle(Object.assign(new Error('deadlock detected'), { code: '40P01' }));
    await until(() => pending.length === 2);
    pending[1]!.settle(); // a
    await until(() => pending.length === 3);
    pending[2]!.settle(adminShutdown()); // b: the database went away
    for (let i = 0; i < 5; i++) await turn();
    assert.equal(pending.length, 3, 'c and d were not each tried against a database that is away');
    await Promise.all([...batch, behind]);
    assert.deepEqual(
      committed.map((r) => r.resource_id),
      ['a'],
    );
    assert.deepEqual(Object.fromEntries(outcomes), {
      a: 'committed',
      b: 'failed',
      c: 'failed',
      d: 'failed',
      e: 'failed',
    });
  });
});
