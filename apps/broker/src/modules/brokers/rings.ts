import type { ResolvedKeys } from '../../crypto/key-file.ts';
import type { BrokerProcess, Rings } from './brokers.types.ts';

/*
 * The rule every check here applies (decision 0013): a process can serve only if it holds the
 * key every other live process writes with, i.e. every other one's primary, in each ring. Rewrap
 * may run only once every live process writes with the primary it re-seals under.
 */

/** The key ids of this process's rings as they are now. */
export function ringsOf(keys: Pick<ResolvedKeys, 'ring' | 'userSecretsRing'>): Rings {
  return {
    encryption: [...keys.ring.kids],
    userSecrets: keys.userSecretsRing === undefined ? [] : [...keys.userSecretsRing.kids],
  };
}

export interface MissingKey {
  readonly ring: 'encryption' | 'user_secrets';
  readonly kid: string;
  /** The process that writes with it. */
  readonly writer: BrokerProcess;
}

/**
 * The keys `rings` lacks that some process of `others` writes with. A process without a
 * user-secrets ring neither writes nor reads user secrets: it lacks nothing there.
 */
export function missingKeys(rings: Rings, others: readonly BrokerProcess[]): MissingKey[] {
  const missing: MissingKey[] = [];
  for (const writer of others) {
    const enc = writer.rings.encryption[0];
    if (enc !== undefined && !rings.encryption.includes(enc))
      missing.push({ ring: 'encryption', kid: enc, writer });
    const user = writer.rings.userSecrets[0];
    if (user !== undefined && rings.userSecrets.length > 0 && !rings.userSecrets.includes(user))
      missing.push({ ring: 'user_secrets', kid: user, writer });
  }
  return missing;
}

export interface RewrapBlocker {
  readonly process: BrokerProcess;
  readonly ring: 'encryption' | 'user_secrets';
  /** `lacks`: it cannot open what rewrap writes; `writes_older`: it has the key but seals with another. */
  readonly problem: 'lacks' | 'writes_older';
  readonly primary: string | undefined;
}

/**
 * The live processes that stand in the way of re-sealing under `target`: each must hold the
 * target primary (or it fails on every rewrapped row) and write with it (or it keeps making
 * ciphertexts under the key being retired).
 */
export function rewrapBlockers(
  target: { encryption: string; userSecrets: string | undefined },
  processes: readonly BrokerProcess[],
): RewrapBlocker[] {
  const out: RewrapBlocker[] = [];
  const check = (
    p: BrokerProcess,
    ring: 'encryption' | 'user_secrets',
    kids: readonly string[],
    kid: string,
  ) => {
    if (kids[0] === kid) return;
    out.push({ process: p, ring, problem: kids.includes(kid) ? 'writes_older' : 'lacks', primary: kids[0] });
  };
  for (const p of processes) {
    check(p, 'encryption', p.rings.encryption, target.encryption);
    if (target.userSecrets !== undefined && p.rings.userSecrets.length > 0)
      check(p, 'user_secrets', p.rings.userSecrets, target.userSecrets);
  }
  return out;
}

/** `host pid 1234 (role all)`: how operators find a process. */
export const describeProcess = (p: Pick<BrokerProcess, 'host' | 'pid' | 'role'>) =>
  `${p.host} pid ${p.pid} (${p.role})`;
