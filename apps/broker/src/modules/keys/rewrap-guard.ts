import { type BrokerProcess, LIVE_MS, type LiveBrokers } from '../brokers/brokers.types.ts';
import { describeProcess, type RewrapBlocker, rewrapBlockers } from '../brokers/rings.ts';

/** The primaries a rewrap re-seals under. */
export interface RewrapTarget {
  readonly encryption: string;
  readonly userSecrets: string | undefined;
}

/**
 * Waits until every live broker process writes with `target`'s primaries, or `waitMs` passed;
 * returns the processes still in the way (none: rewrap may run). The wait lets `nexus keys rotate
 * && nexus keys rewrap` work as one line: processes following the key file record their new ring
 * within a second or two of the rotation.
 */
export async function waitForBrokers(
  store: LiveBrokers,
  target: RewrapTarget,
  options: { waitMs: number; pollMs?: number; now?: () => number },
): Promise<{ blockers: RewrapBlocker[]; live: BrokerProcess[] }> {
  const now = options.now ?? Date.now;
  const deadline = now() + options.waitMs;
  for (;;) {
    const live = await store.live(now());
    const blockers = rewrapBlockers(target, live);
    if (blockers.length === 0 || now() >= deadline) return { blockers, live };
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 500));
  }
}

const RING_NAMES = {
  encryption: { label: 'encryption', variable: 'ENCRYPTION_KEYS' },
  user_secrets: { label: 'user-secrets', variable: 'USER_SECRETS_KEYS' },
} as const;

/**
 * One line per blocker and the fix for each kind of key source: what `rewrap` prints when it
 * refuses (`waitedMs` given) or when a process fell behind while it ran.
 */
export function explainBlockers(blockers: readonly RewrapBlocker[], waitedMs?: number): string {
  const lines = blockers.map((b) => {
    const ring = RING_NAMES[b.ring];
    const what =
      b.problem === 'lacks'
        ? `lacks the new ${ring.label} primary key (it writes with ${b.primary ?? 'none'})`
        : `has the new ${ring.label} key but still writes with ${b.primary ?? 'none'}`;
    const fix =
      b.process.keySource === 'file'
        ? `it has not re-read its key file: it does within seconds, or at once on \`kill -HUP ${b.process.pid}\` on ${b.process.host}; if that host has its own copy of the file, copy the new file there`
        : `its keys come from the environment${b.process.keySource === 'transit' ? ' (KEY_PROVIDER=transit)' : ''}: ${
            b.problem === 'lacks'
              ? // First everywhere at once would have the first replica restarted write what the
                // others cannot open yet (docs/operations.md, step 2).
                `add the new key after the current primary in ${ring.variable} there and restart it; move it to the front only once every replica holds it`
              : `move the new key to the front of ${ring.variable} there and restart it`
          }`;
    return `  ${describeProcess(b.process)}, last heartbeat ${new Date(b.process.heartbeatAt).toISOString()}: ${what}; ${fix}`;
  });
  return [
    waitedMs === undefined
      ? `keys rewrap: finished, but ${blockers.length} live broker process(es) started or changed meanwhile and do not write with the new primary key; what they write stays under an older key:`
      : `keys rewrap: refused after waiting ${Math.round(waitedMs / 1000)} s: ${blockers.length} live broker process(es) would fail to open, or keep writing, ciphertexts this rewrap does not cover:`,
    ...lines,
    'Every live broker must hold the new key and write with it before stored secrets move to it (docs/operations.md, "Rotating the encryption key").',
    `A process that stopped without shutting down (kill -9, a lost host) stays listed until ${LIVE_MS / 1000} s after its last heartbeat. Then run \`nexus keys rewrap\` again.`,
  ].join('\n');
}
