/**
 * The soak bench's open-loop generator: each kind of call is started at its share of the rate,
 * whatever the answers take (a slow broker gets more concurrent calls, not fewer calls), up to a
 * cap on calls in flight beyond which calls are recorded as `shed`. One consent is started every
 * `consentEverySeconds`, cycling through the workspaces, never two at once for one workspace.
 */
import { consent, explicitRefresh, proxied, type SoakWorld, secretRead, tokenRead } from './soak-calls.ts';
import type { Kind } from './soak-series.ts';

/** Shares of the rate; consents come on their own clock. */
export const MIX = { token: 0.5, proxy: 0.3, secret: 0.19, refresh: 0.01 } as const;

export function startOpenLoop(options: {
  world: SoakWorld;
  workspaces: readonly string[];
  rate: number;
  consentEverySeconds: number;
  maxInFlight: number;
}) {
  const { world: w, workspaces } = options;
  const started = Date.now();
  const running = new Set<Promise<void>>();
  const launch = (kind: Kind, call: () => Promise<void>) => {
    if (running.size >= options.maxInFlight) {
      w.rec.record(kind, 'shed', 0, 'in-flight limit reached');
      return;
    }
    const p = call().finally(() => running.delete(p));
    running.add(p);
  };
  const calls = { token: tokenRead, proxy: proxied, secret: secretRead, refresh: explicitRefresh };
  const issued = { token: 0, proxy: 0, secret: 0, refresh: 0 };
  let consents = 0;
  const consenting = new Set<string>();

  const tick = () => {
    const elapsed = (Date.now() - started) / 1000;
    for (const kind of Object.keys(MIX) as Array<keyof typeof MIX>) {
      const due = Math.floor(elapsed * options.rate * MIX[kind]);
      for (; issued[kind] < due; issued[kind]++) launch(kind, () => calls[kind](w));
    }
    if (Math.floor(elapsed / options.consentEverySeconds) > consents) {
      const ws = workspaces[consents++ % workspaces.length]!;
      if (consenting.has(ws)) return;
      consenting.add(ws);
      launch('consent', () => consent(w, ws).finally(() => consenting.delete(ws)));
    }
  };
  const ticker = setInterval(tick, 10);

  return {
    /** Stops starting calls and waits for those in flight, at most `graceMs`. */
    async stop(graceMs: number): Promise<void> {
      clearInterval(ticker);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...running]),
        new Promise((r) => {
          timer = setTimeout(r, graceMs);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}
