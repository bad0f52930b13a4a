/**
 * The SDK's `applyStrategy` against the shared strategy vectors (testdata/strategy-vectors.json at
 * the repository root), the same file the broker and the Python and Go SDKs assert.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { applyStrategy, type Strategy, StrategyError } from '../src/index.ts';

interface Vector {
  name: string;
  strategy: Strategy;
  credentials: Record<string, string>;
  request: { method: string; url: string; headers: Record<string, string>; body: string };
  now?: string;
  expected:
    | { headers: Record<string, string>; url: string; query: [string, string][] }
    | { error: { names: string[] } };
}

const FILE = join(import.meta.dirname, '..', '..', '..', 'testdata', 'strategy-vectors.json');
const { vectors } = JSON.parse(readFileSync(FILE, 'utf8')) as { vectors: Vector[] };

const apply = (v: Vector) =>
  applyStrategy(
    v.strategy,
    v.credentials,
    {
      url: new URL(v.request.url),
      method: v.request.method,
      headers: { ...v.request.headers },
      body: v.request.body === '' ? undefined : new TextEncoder().encode(v.request.body),
    },
    { now: () => (v.now === undefined ? Number.NaN : Date.parse(v.now)) },
  );

const lowerCased = (headers: Record<string, string>) => {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers))
    if (!['host', 'content-length'].includes(name.toLowerCase())) out[name.toLowerCase()] = value;
  return out;
};
/** Decoded query pairs in a fixed order: the order a client writes them in is not significant. */
const sortedPairs = (pairs: Iterable<[string, string]>) =>
  [...pairs].map((pair) => JSON.stringify(pair)).sort();

describe('SDK strategies match the shared vectors', () => {
  test('the vector file is there and covers every strategy type', () => {
    assert.deepEqual([...new Set(vectors.map((v) => v.strategy.type))].sort(), [
      'aws_sigv4',
      'basic_auth',
      'header',
      'headers',
      'hmac_payload',
      'oauth2',
      'query_param',
    ]);
  });

  for (const v of vectors) {
    test(v.name, async () => {
      const expected = v.expected;
      if ('error' in expected) {
        await assert.rejects(apply(v), (error: Error) => {
          assert.ok(error instanceof StrategyError, `a StrategyError, not ${error.name}`);
          for (const name of expected.error.names)
            assert.ok(error.message.includes(name), `"${error.message}" names ${name}`);
          for (const value of Object.values(v.credentials))
            if (value !== '') assert.ok(!error.message.includes(value), 'no credential value in the error');
          return true;
        });
        return;
      }
      const out = await apply(v);
      assert.deepEqual(lowerCased(out.headers), expected.headers);
      assert.equal(`${out.url.origin}${out.url.pathname}`, expected.url);
      assert.deepEqual(sortedPairs(out.url.searchParams), sortedPairs(expected.query));
      assert.equal(out.method, v.request.method);
    });
  }
});
