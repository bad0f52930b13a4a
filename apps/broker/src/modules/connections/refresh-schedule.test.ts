import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createRefreshSchedule, extendsToken, minIntervalMs, readSkewMs } from './refresh-schedule.ts';

/**
 * The lifetime bounds of decision 0012, for lifetimes from one second to a week and for every
 * margin and jitter the configuration allows (issue "Refresh you can trust", point 1).
 */

const S = 1000;
const LIFETIMES = [1 * S, 2 * S, 5 * S, 20 * S, 60 * S, 300 * S, 3600 * S, 86_400 * S, 7 * 86_400 * S];
const MARGINS = [1 * S, 30 * S, 300 * S, 86_400 * S];
const JITTERS = [0, 60 * S, 3600 * S];
const RANDOMS = [0, 0.5, 0.999_999];

describe('refresh schedule bounded by the token lifetime', () => {
  test('the worker refreshes after half the lifetime at the earliest and before expiry', () => {
    for (const lifetime of LIFETIMES)
      for (const marginMs of MARGINS)
        for (const jitterMs of JITTERS)
          for (const r of RANDOMS) {
            const schedule = createRefreshSchedule({ marginMs, jitterMs, random: () => r });
            const issuedAt = 1_700_000_000_000;
            const due = schedule.dueAt(issuedAt, issuedAt + lifetime)!;
            const at = `L=${lifetime} margin=${marginMs} jitter=${jitterMs} r=${r}`;
            assert.ok(due - issuedAt >= lifetime / 2, `${at}: due ${due - issuedAt} ms after issue`);
            assert.ok(due < issuedAt + lifetime, `${at}: due at or after expiry`);
          }
  });

  test('a day-long token is still refreshed the configured margin before expiry', () => {
    const schedule = createRefreshSchedule({ marginMs: 300 * S, jitterMs: 60 * S, random: () => 0.5 });
    const due = schedule.dueAt(0, 86_400 * S)!;
    assert.equal(86_400 * S - due, 330 * S);
  });

  test('simulated over a day, refreshes happen about once per half lifetime, never more', () => {
    for (const lifetime of LIFETIMES.filter((l) => l <= 3600 * S)) {
      const schedule = createRefreshSchedule({ marginMs: 300 * S, jitterMs: 60 * S });
      const horizon = Math.max(100 * lifetime, 3600 * S);
      let t = 0;
      let refreshes = 0;
      for (;;) {
        const due = schedule.dueAt(t, t + lifetime)!;
        if (due > horizon) break;
        assert.ok(
          due - t >= minIntervalMs(lifetime) || lifetime < 2 * 500,
          'the floor between attempts holds',
        );
        t = due;
        refreshes++;
      }
      assert.ok(refreshes <= horizon / (lifetime / 2), `L=${lifetime}: ${refreshes} refreshes`);
    }
  });

  test('the read path refreshes within a quarter of the lifetime of expiry, and at most 30 s before', () => {
    assert.equal(readSkewMs(1 * S), 250);
    assert.equal(readSkewMs(20 * S), 5 * S);
    assert.equal(readSkewMs(3600 * S), 30 * S);
    assert.equal(readSkewMs(-5 * S), 0, 'a token born expired');
    assert.equal(minIntervalMs(1 * S), 500);
    assert.equal(minIntervalMs(0), 500, 'a floor even for tokens that do not live');
    assert.equal(minIntervalMs(20 * S), 10 * S);
  });

  test('answers that do not extend the token count as failures', () => {
    const t = 1_000_000;
    const previous = { issuedAt: t - 30 * S, expiresAt: t + 30 * S };
    assert.equal(extendsToken(t, t + 60 * S, previous), true, 'a normal refresh');
    assert.equal(extendsToken(t, t, previous), false, 'expires_in: 0');
    assert.equal(extendsToken(t, t - S, previous), false, 'already expired');
    assert.equal(extendsToken(t, t + 30 * S, previous), false, 'the same expiry again');
    assert.equal(extendsToken(t, t + 31 * S, previous), false, 'the same expiry, rounded up');
    assert.equal(extendsToken(t, null, previous), true, 'no expires_in: not expiring');
    assert.equal(
      extendsToken(t, t + 3600 * S, { issuedAt: t, expiresAt: t + 3600 * S }),
      true,
      'a forced refresh right after the last one gives the same expiry legitimately',
    );
  });

  test('backoff doubles from 30 s up to an hour and honours Retry-After', () => {
    const schedule = createRefreshSchedule({ marginMs: 0, jitterMs: 0, random: () => 0.5 });
    assert.equal(schedule.retryAt(1, 0), 30 * S);
    assert.equal(schedule.retryAt(2, 0), 60 * S);
    assert.equal(schedule.retryAt(20, 0), 3600 * S);
    assert.equal(schedule.retryAt(1, 0, 120 * S), 120 * S);
  });
});
