/**
 * The broker's strategies against the shared vectors (testdata/strategy-vectors.json, read by the
 * three SDK suites too): `applyStrategy` for the capture probe and the proxy, `signSigV4` for the
 * proxy's aws_sigv4, at the vector's fixed signing time.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, mock, test } from 'node:test';
import { applyStrategy } from '../src/modules/strategies/apply.ts';
import { signSigV4 } from '../src/modules/strategies/sigv4.ts';
import type { Strategy } from '../src/modules/strategies/strategy.ts';

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

test('the vectors are what the independent derivation gives (not a copy of any implementation)', () => {
  const script = join(import.meta.dirname, '..', '..', '..', 'testdata', 'derive-strategy-vectors.mjs');
  const derived = execFileSync(process.execPath, [script], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(derived), JSON.parse(readFileSync(FILE, 'utf8')));
});

/** What the broker sends: its headers (lower-case names, no host) and URL. */
async function apply(v: Vector): Promise<{ headers: Record<string, string>; url: URL }> {
  const url = new URL(v.request.url);
  if (v.strategy.type === 'aws_sigv4') {
    mock.timers.enable({ apis: ['Date'], now: Date.parse(v.now ?? '') });
    try {
      const signed = await signSigV4(v.strategy, v.credentials, {
        method: v.request.method,
        url,
        headers: { ...v.request.headers },
        body: v.request.body === '' ? undefined : Buffer.from(v.request.body, 'utf8'),
      });
      return { headers: signed, url };
    } finally {
      mock.timers.reset();
    }
  }
  const out = applyStrategy(v.strategy, v.credentials, {
    url,
    headers: { ...v.request.headers },
    body: Buffer.from(v.request.body, 'utf8'),
  });
  return { headers: { ...out.headers }, url: out.url };
}

const lowerCased = (headers: Record<string, string>) => {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers))
    if (!['host', 'content-length'].includes(name.toLowerCase())) out[name.toLowerCase()] = value;
  return out;
};
/** Decoded query pairs in a fixed order: the order a client writes them in is not significant. */
const sortedPairs = (pairs: Iterable<[string, string]>) =>
  [...pairs].map((pair) => JSON.stringify(pair)).sort();

describe('broker strategies match the shared vectors', () => {
  test('the vector file covers every strategy type and its error cases', () => {
    const types = new Set(vectors.map((v) => v.strategy.type));
    assert.deepEqual([...types].sort(), [
      'aws_sigv4',
      'basic_auth',
      'header',
      'headers',
      'hmac_payload',
      'oauth2',
      'query_param',
    ]);
    for (const type of types)
      assert.ok(
        vectors.some((v) => v.strategy.type === type && 'error' in v.expected),
        `${type} has an error vector`,
      );
  });

  for (const v of vectors) {
    test(v.name, async () => {
      const expected = v.expected;
      if ('error' in expected) {
        await assert.rejects(apply(v), (error: Error) => {
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
    });
  }
});
