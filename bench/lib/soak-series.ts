/**
 * The soak bench's recorder: per kind of request, what happened in the current interval (counts by
 * outcome, latencies), closed into one row of the time series at each interval's end; plus the
 * distinct failures seen over the whole run, each with a count and its first example.
 */
import { percentile, round } from './stats.ts';

export const KINDS = ['token', 'refresh', 'consent', 'proxy', 'secret'] as const;
export type Kind = (typeof KINDS)[number];

/**
 * - `ok`: the expected answer;
 * - `expected`: a refusal the bench caused itself (a call for a connection that a new consent
 *   superseded while the call was in flight);
 * - `server_error`: 5xx;
 * - `unexpected`: any other non-2xx, a network error or timeout, or a wrong body;
 * - `bad_token`: a 2xx whose access token the provider never issued or that had expired;
 * - `shed`: not sent, because too many calls were already in flight (the broker stalled).
 */
export type Outcome = 'ok' | 'expected' | 'server_error' | 'unexpected' | 'bad_token' | 'shed';
const OUTCOMES: readonly Outcome[] = ['ok', 'expected', 'server_error', 'unexpected', 'bad_token', 'shed'];

export interface KindRow {
  requests: number;
  ok: number;
  expected: number;
  server_error: number;
  unexpected: number;
  bad_token: number;
  shed: number;
  p50_ms: number | null;
  p99_ms: number | null;
  max_ms: number | null;
}

export interface Failure {
  kind: Kind;
  what: string;
  count: number;
  first_at_s: number;
  example: string;
}

/** Outcomes that make the run fail. */
export const FAILING: readonly Outcome[] = ['server_error', 'unexpected', 'bad_token', 'shed'];

export function createKindRecorder(startedAt: number) {
  const fresh = () => ({
    counts: Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>,
    latencies: [] as number[],
  });
  let current = Object.fromEntries(KINDS.map((k) => [k, fresh()])) as Record<Kind, ReturnType<typeof fresh>>;
  const totals = Object.fromEntries(KINDS.map((k) => [k, fresh().counts])) as Record<
    Kind,
    Record<Outcome, number>
  >;
  const failures = new Map<string, Failure>();

  return {
    /** One finished call (or one shed): latency in ms, `what` and `example` for non-ok outcomes. */
    record(kind: Kind, outcome: Outcome, ms: number, what?: string, example?: string): void {
      const slot = current[kind];
      slot.counts[outcome]++;
      totals[kind][outcome]++;
      if (outcome !== 'shed') slot.latencies.push(ms);
      if (outcome === 'ok' || what === undefined) return;
      const key = `${kind} ${outcome} ${what}`;
      const seen = failures.get(key);
      if (seen) seen.count++;
      else
        failures.set(key, {
          kind,
          what: `${outcome}: ${what}`,
          count: 1,
          first_at_s: Math.round((Date.now() - startedAt) / 1000),
          example: (example ?? '').slice(0, 300),
        });
    },

    /** Closes the interval: its row per kind, and a fresh interval. */
    close(): Record<Kind, KindRow> {
      const rows = {} as Record<Kind, KindRow>;
      for (const kind of KINDS) {
        const { counts, latencies } = current[kind];
        latencies.sort((a, b) => a - b);
        rows[kind] = {
          requests: OUTCOMES.reduce((sum, o) => sum + (o === 'shed' ? 0 : counts[o]), 0),
          ...counts,
          p50_ms: round(percentile(latencies, 50)),
          p99_ms: round(percentile(latencies, 99)),
          max_ms: round(latencies.at(-1) ?? Number.NaN),
        };
      }
      current = Object.fromEntries(KINDS.map((k) => [k, fresh()])) as typeof current;
      return rows;
    },

    totals(): Record<Kind, Record<Outcome, number>> {
      return totals;
    },

    failures(): Failure[] {
      return [...failures.values()].sort((a, b) => b.count - a.count);
    },
  };
}

export type KindRecorder = ReturnType<typeof createKindRecorder>;
