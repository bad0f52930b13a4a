import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runChaos } from './chaos-scenario.ts';
import { DIALECT } from './harness.ts';

/**
 * Multi-replica chaos (issue "Refresh you can trust", point 5; decision 0012): three `nexus serve`
 * processes with their refresh workers on one PostgreSQL, a real OpenID provider issuing 30-second
 * access tokens and rotating refresh tokens whose reuse revokes the whole grant, an agent reading
 * tokens through every live replica, one replica killed with SIGKILL mid-run and a fresh one
 * started. The brokers run on the default refresh margin (300 s) and jitter (60 s): ten times the
 * tokens' lifetime. PostgreSQL only by nature; `bench/chaos.ts` runs it longer and wider.
 */

const PG_ONLY =
  DIALECT !== 'postgres' && 'multi-replica coordination is PostgreSQL-only: runs in `npm run test:pg`';

describe('three replicas, one killed, 30-second tokens that rotate', { skip: PG_ONLY }, () => {
  it('loses no grant, reuses no refresh token, stays within the lifetime bound and answers no 5xx', async () => {
    const connections = 20;
    const result = await runChaos({
      connections,
      ttlSeconds: 30,
      runMs: 70_000,
      killAtMs: 25_000,
      readers: 6,
    });
    assert.deepEqual(result.failures.slice(0, 10), [], `${result.failures.length} failed reads`);
    assert.deepEqual([...result.statuses.keys()], [200], 'every answer was a 200');
    assert.ok(result.served > 500, `the agent read ${result.served} tokens`);
    assert.equal(result.reused, 0, 'no refresh token presented twice');
    for (const c of result.final) {
      assert.equal(c.status, 'active', `connection ${c.id}`);
      assert.equal(c.userinfo, 200, `the provider accepts the token of ${c.id}`);
    }
    // About one refresh per half lifetime at most, and some at all: the tokens were kept fresh.
    assert.ok(result.refreshes <= result.bound, `${result.refreshes} refreshes; bound ${result.bound}`);
    assert.ok(result.refreshes >= connections * 2, `${result.refreshes} refreshes`);
  });
});
