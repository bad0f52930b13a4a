/**
 * The refreshes a provider saw, held against what the access tokens' lifetime L allows (decision
 * 0012): two scheduled refreshes of one connection (the worker's, or a read's) are at least L/2
 * apart, so a grant chain alive for T seconds gets at most T/(L/2) + 1 of them. Explicit refreshes
 * (`POST /v1/refresh/{id}`) are the caller's choice and come on top. A chain is one connection's
 * grant at the provider, from its authorization-code exchange to the consent that superseded it.
 */
import { percentile, round } from './stats.ts';
import type { GrantChain } from './token-tap.ts';

/** Completion times at the provider differ from the broker's attempt times by a request's length. */
const TOLERANCE_MS = 1_000;

export function refreshBudget(input: {
  chains: ReadonlyMap<number, GrantChain>;
  /** chain → when its connection was superseded (absent: alive at `end`). */
  endedAt: ReadonlyMap<number, number>;
  /** Digests of access tokens that explicit refreshes answered with. */
  explicitTokens: ReadonlySet<string>;
  lifetimeMs: number;
  end: number;
}) {
  const minGap = Math.max(500, input.lifetimeMs / 2);
  let refreshes = 0;
  let explicit = 0;
  let alive = 0;
  let budget = 0;
  let overBudget = 0;
  let worst: { chain: number; refreshes: number; budget: number; alive_s: number } | undefined;
  const early: number[] = [];
  const gaps: number[] = [];
  for (const chain of input.chains.values()) {
    const end = input.endedAt.get(chain.id) ?? input.end;
    const aliveMs = Math.max(0, end - chain.startedAt);
    let prev = chain.startedAt;
    let own = 0;
    for (const r of chain.refreshes) {
      const gap = r.at - prev;
      prev = r.at;
      if (input.explicitTokens.has(r.token)) {
        own++;
        continue;
      }
      gaps.push(gap / 1000);
      if (gap < minGap - TOLERANCE_MS) early.push(gap / 1000);
    }
    const allowed = Math.floor(aliveMs / minGap) + 1 + own;
    refreshes += chain.refreshes.length;
    explicit += own;
    alive += aliveMs;
    budget += allowed;
    if (chain.refreshes.length > allowed) {
      overBudget++;
      if (worst === undefined || chain.refreshes.length - allowed > worst.refreshes - worst.budget)
        worst = {
          chain: chain.id,
          refreshes: chain.refreshes.length,
          budget: allowed,
          alive_s: Math.round(aliveMs / 1000),
        };
    }
  }
  gaps.sort((a, b) => a - b);
  return {
    chains: input.chains.size,
    refreshes,
    explicit,
    scheduled: refreshes - explicit,
    /** The fewest refreshes that keep every connection's token valid all the time: alive / L. */
    needed_at_least: Math.round(alive / input.lifetimeMs),
    budget,
    chains_over_budget: overBudget,
    worst_chain: worst ?? null,
    /** Scheduled refreshes sooner than L/2 after the chain's previous refresh. */
    early_refreshes: early.length,
    seconds_between_scheduled_refreshes: {
      min: round(gaps[0] ?? Number.NaN),
      p1: round(percentile(gaps, 1)),
      p50: round(percentile(gaps, 50)),
      max: round(gaps.at(-1) ?? Number.NaN),
    },
  };
}
