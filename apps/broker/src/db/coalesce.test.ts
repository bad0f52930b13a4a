import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { coalescedReads } from './coalesce.ts';

/** A fetch whose calls are recorded and answered when the test says so. */
function controlledFetch() {
  const calls: {
    keys: string[];
    answer: (values?: Record<string, number>) => void;
    fail: (e: Error) => void;
  }[] = [];
  const fetch = (keys: string[]) =>
    new Promise<Map<string, number>>((resolve, reject) => {
      calls.push({
        keys,
        answer: (values = {}) => resolve(new Map(Object.entries(values))),
        fail: reject,
      });
    });
  return { calls, fetch };
}

const turn = () => new Promise((r) => setImmediate(r));

describe('coalescedReads', () => {
  it('serves the reads of one event-loop turn with one fetch, each key asked once', async () => {
    const { calls, fetch } = controlledFetch();
    const load = coalescedReads(fetch, { maxBatch: 100, maxInFlight: 2 });
    const answers = Promise.all([load('a'), load('b'), load('a'), load('missing')]);
    await turn();
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0]!.keys, ['a', 'b', 'missing']);
    calls[0]!.answer({ a: 1, b: 2 });
    assert.deepEqual(await answers, [1, 2, 1, undefined]);
  });

  it('never answers a read with a fetch that was sent before it was asked for', async () => {
    const { calls, fetch } = controlledFetch();
    const load = coalescedReads(fetch, { maxBatch: 100, maxInFlight: 1 });
    const first = load('a');
    await turn();
    assert.equal(calls.length, 1);
    // Asked while the first fetch is on the wire: it must wait for a fetch of its own.
    const second = load('a');
    await turn();
    assert.equal(calls.length, 1, 'maxInFlight 1: the second fetch waits for the first');
    calls[0]!.answer({ a: 1 });
    assert.equal(await first, 1);
    await turn();
    assert.equal(calls.length, 2);
    calls[1]!.answer({ a: 2 });
    assert.equal(await second, 2);
  });

  it('splits a queue longer than maxBatch and keeps at most maxInFlight fetches running', async () => {
    const { calls, fetch } = controlledFetch();
    const load = coalescedReads(fetch, { maxBatch: 2, maxInFlight: 2 });
    const answers = Promise.all(['a', 'b', 'c', 'd', 'e'].map((k) => load(k)));
    await turn();
    assert.deepEqual(
      calls.map((c) => c.keys),
      [
        ['a', 'b'],
        ['c', 'd'],
      ],
    );
    calls[0]!.answer({ a: 1, b: 2 });
    await turn();
    assert.deepEqual(calls[2]?.keys, ['e']);
    calls[1]!.answer({ c: 3, d: 4 });
    calls[2]!.answer({ e: 5 });
    assert.deepEqual(await answers, [1, 2, 3, 4, 5]);
  });

  it('rejects the read of a failed single-key fetch, and keeps working', async () => {
    const { calls, fetch } = controlledFetch();
    const load = coalescedReads(fetch, { maxBatch: 100, maxInFlight: 1 });
    const failed = load('a');
    await turn();
    const later = load('c');
    calls[0]!.fail(new Error('connection lost'));
    await assert.rejects(failed, /connection lost/);
    await turn();
    calls[1]!.answer({ c: 3 });
    assert.equal(await later, 3);
  });

  it('retries the keys of a failed shared fetch one by one, so one bad key fails alone', async () => {
    const { calls, fetch } = controlledFetch();
    const load = coalescedReads(fetch, { maxBatch: 100, maxInFlight: 1 });
    const good = load('a');
    const bad = load('bad\u0000');
    await turn();
    assert.deepEqual(calls[0]!.keys, ['a', 'bad\u0000']);
    calls[0]!.fail(new Error('invalid byte sequence'));
    await turn();
    const retry = (key: string) => calls.slice(1).find((c) => c.keys.length === 1 && c.keys[0] === key)!;
    retry('a').answer({ a: 1 });
    retry('bad\u0000').fail(new Error('invalid byte sequence'));
    assert.equal(await good, 1);
    await assert.rejects(bad, /invalid byte sequence/);
  });
});
