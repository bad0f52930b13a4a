/**
 * The multi-replica chaos run, longer and wider than the CI test (apps/broker/test/chaos-replicas):
 * three `nexus serve` replicas with workers on one PostgreSQL, a real OpenID provider (oidc-provider)
 * with short access tokens and rotating refresh tokens whose reuse revokes the grant, an agent
 * reading tokens through every live replica, one replica killed with SIGKILL and a fresh one
 * started. Usage:
 *
 *   bash scripts/services.sh run-with-postgres node bench/chaos.ts [--connections 300]
 *        [--ttl 30] [--minutes 5] [--kill-at 60] [--readers 12]
 *
 * Reports reads, their latency, refreshes against the lifetime bound, reused refresh tokens (must
 * be 0), and the final state of every connection (all active, every token accepted by the
 * provider's userinfo). Exits 1 when any of those fails.
 */
import { parseArgs } from 'node:util';
import { runChaos } from '../apps/broker/test/chaos-scenario.ts';
import { DIALECT } from '../apps/broker/test/harness.ts';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '300' },
    ttl: { type: 'string', default: '30' },
    minutes: { type: 'string', default: '5' },
    'kill-at': { type: 'string', default: '60' },
    readers: { type: 'string', default: '12' },
  },
});
if (DIALECT !== 'postgres')
  throw new Error('run under: bash scripts/services.sh run-with-postgres node bench/chaos.ts');

const connections = Number(values.connections);
const ttlSeconds = Number(values.ttl);
const started = Date.now();
const result = await runChaos({
  connections,
  ttlSeconds,
  runMs: Number(values.minutes) * 60_000,
  killAtMs: Number(values['kill-at']) * 1000,
  readers: Number(values.readers),
  log: (line) => console.error(`[chaos ${Math.round((Date.now() - started) / 1000)}s] ${line}`),
});

const pct = (p: number) =>
  result.latenciesMs.length === 0
    ? Number.NaN
    : result.latenciesMs[Math.min(result.latenciesMs.length - 1, Math.floor(p * result.latenciesMs.length))]!;
const active = result.final.filter((c) => c.status === 'active').length;
const accepted = result.final.filter((c) => c.userinfo === 200).length;
const perConnection = result.refreshes / connections;
const halfLives = result.elapsedMs / ((ttlSeconds * 1000) / 2);
const lines = [
  `| measure | value |`,
  `| --- | --- |`,
  `| run | ${(result.elapsedMs / 60_000).toFixed(1)} min, ${connections} connections, ${ttlSeconds} s access tokens, 3 replicas (one killed with SIGKILL, one started) |`,
  `| token reads answered 200 | ${result.served} (${(result.served / (result.elapsedMs / 1000)).toFixed(0)}/s) |`,
  `| other answers | ${
    [...result.statuses]
      .filter(([s]) => s !== 200)
      .map(([s, n]) => `${s}: ${n}`)
      .join(', ') || 'none'
  } |`,
  `| reads refused by the killed replica as it died | ${result.refusedByDeadReplica} |`,
  `| read latency p50 / p99 / max | ${pct(0.5).toFixed(1)} / ${pct(0.99).toFixed(1)} / ${pct(1).toFixed(1)} ms |`,
  `| refresh grants at the provider | ${result.refreshes} (${perConnection.toFixed(2)} per connection over ${halfLives.toFixed(1)} half-lifetimes; bound ${result.bound}) |`,
  `| refresh tokens presented twice | ${result.reused} |`,
  `| connections active at the end | ${active} / ${connections} |`,
  `| tokens accepted by the provider's userinfo | ${accepted} / ${connections} |`,
];
console.log(lines.join('\n'));
if (result.failures.length > 0)
  console.log(`\nfailed reads (first 10):\n${result.failures.slice(0, 10).join('\n')}`);
const ok =
  result.failures.length === 0 &&
  result.reused === 0 &&
  active === connections &&
  accepted === connections &&
  result.refreshes <= result.bound;
process.exit(ok ? 0 : 1);
