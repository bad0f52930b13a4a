import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BrokerProcess } from './brokers.types.ts';
import { missingKeys, rewrapBlockers } from './rings.ts';

const proc = (pid: number, encryption: string[], userSecrets: string[] = []): BrokerProcess => ({
  id: `p${pid}`,
  host: 'h',
  pid,
  role: 'all',
  startedAt: 0,
  heartbeatAt: 0,
  rings: { encryption, userSecrets },
  keySource: 'env',
});

describe('key ring rules across live processes (decision 0013)', () => {
  it('a process lacks a key when another writes with one it does not hold, in either ring', () => {
    const a = proc(1, ['k2', 'k1'], ['u2', 'u1']);
    const b = proc(2, ['k1'], ['u1']);
    assert.deepEqual(
      missingKeys(b.rings, [a, b]).map((m) => [m.ring, m.kid, m.writer.pid]),
      [
        ['encryption', 'k2', 1],
        ['user_secrets', 'u2', 1],
      ],
    );
    assert.deepEqual(missingKeys(a.rings, [a, b]), [], 'holding an older key as secondary is enough');
    // Without a user-secrets ring a process neither reads nor writes user secrets.
    assert.deepEqual(missingKeys(proc(3, ['k2', 'k1']).rings, [a, b]), []);
  });

  it('rewrap needs every live process to hold and write with the target primaries', () => {
    const target = { encryption: 'k2', userSecrets: 'u2' };
    const ready = proc(1, ['k2', 'k1'], ['u2']);
    const older = proc(2, ['k1', 'k2'], ['u2']);
    const lacking = proc(3, ['k1'], ['u1']);
    assert.deepEqual(rewrapBlockers(target, [ready]), []);
    assert.deepEqual(
      rewrapBlockers(target, [ready, older, lacking]).map((b) => [
        b.process.pid,
        b.ring,
        b.problem,
        b.primary,
      ]),
      [
        [2, 'encryption', 'writes_older', 'k1'],
        [3, 'encryption', 'lacks', 'k1'],
        [3, 'user_secrets', 'lacks', 'u1'],
      ],
    );
    assert.deepEqual(rewrapBlockers({ encryption: 'k2', userSecrets: undefined }, [lacking]).length, 1);
  });
});
