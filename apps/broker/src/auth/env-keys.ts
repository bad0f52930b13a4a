import { timingSafeEqual } from 'node:crypto';
import type { NamedApiKey } from '../config/config.types.ts';
import { sha256Bytes } from '../crypto/digest.ts';
import type { AdminScope } from './principal.ts';

/** A key of API_KEY/API_KEYS as recognised: its name and scope, never its secret. */
export interface EnvKeyMatch {
  readonly name: string;
  readonly scope: AdminScope;
}

/**
 * Recognises the keys of API_KEY/API_KEYS by SHA-256, in constant time: the presented key is
 * compared against every configured key whichever matches, so timing does not tell which one did.
 * The one place both authentication (admin-keys.service.ts) and the failure limit's credential
 * families (http/credential-family.ts) find an environment key.
 */
export function envKeyMatcher(keys: readonly NamedApiKey[]): (presented: string) => EnvKeyMatch | undefined {
  const digests = keys.map((k) => ({
    match: { name: k.name, scope: k.scope },
    hash: sha256Bytes(k.key.reveal()),
  }));
  if (digests.length === 0) return () => undefined;
  return (presented) => {
    const digest = sha256Bytes(presented);
    let found: EnvKeyMatch | undefined;
    for (const key of digests)
      if (timingSafeEqual(key.hash, digest) && found === undefined) found = key.match;
    return found;
  };
}
