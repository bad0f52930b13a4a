/**
 * Where a server's CPU went, from a V8 CPU profile (`node --cpu-prof`): self time by category
 * (HTTP, Fastify, logging, metrics, validation, crypto, database client, audit, the broker's own
 * code, garbage collection…), as shares of the busy time. bench/token-fetch.ts --profile turns
 * them into CPU microseconds per request. Open the same .cpuprofile in Chrome DevTools or
 * speedscope for the flame graph.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** First match wins: a frame's category from its function name and file. */
const CATEGORIES: ReadonlyArray<readonly [string, RegExp]> = [
  ['garbage collection', /^\(garbage collector\)/],
  [
    'logging (pino, access log)',
    /node_modules\/(pino|@pinojs|sonic-boom|thread-stream)|http\/logger\.ts|^writeString /,
  ],
  ['metrics (prom-client)', /node_modules\/prom-client|http\/metrics\.ts/],
  ['validation and serialization (zod)', /node_modules\/(zod|fastify-type-provider-zod|fast-json-stringify)/],
  [
    'crypto (envelope, hashes)',
    /crypto\/|node:crypto|^(Hash|digest|update|final|createCipherBase|setAAD|setAuthTag|createSecretKey|KeyObject|getKeyObjectSlots|randomFillSync|timingSafeEqual) /,
  ],
  [
    'database client (pg, kysely, sqlite)',
    /node_modules\/(pg|pg-protocol|pg-pool|kysely)|src\/db\/|^writev |node:sqlite/,
  ],
  ['audit (batching, hash chain)', /modules\/audit\//],
  ['Fastify (routing, hooks, reply)', /node_modules\/(fastify|find-my-way|avvio|@fastify)/],
  [
    'HTTP in Node (parse, headers, socket write)',
    /node:_http|node:net|stream_base_commons|^writeUtf8String |^(parserOnIncoming|parserOnHeadersComplete) /,
  ],
  ['the broker (routes, services, auth hooks)', /apps\/broker\/src\//],
  [
    'promises, timers, events (Node internals)',
    /node:(internal|events|timers)|^(runMicrotasks|processTicksAndRejections) /,
  ],
];

export function cpuBreakdown(file: string): Array<{ category: string; share: number }> {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, number>();
  let busy = 0;
  p.samples.forEach((id, i) => {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === '(idle)') return;
    const dt = p.timeDeltas[i] ?? 0;
    const label = `${frame.functionName} ${frame.url}`;
    const category =
      CATEGORIES.find(([, re]) => re.test(label))?.[0] ?? 'other (native code, start-up, unclassified)';
    totals.set(category, (totals.get(category) ?? 0) + dt);
    busy += dt;
  });
  return [...totals]
    .map(([category, t]) => ({ category, share: t / busy }))
    .sort((a, b) => b.share - a.share);
}
