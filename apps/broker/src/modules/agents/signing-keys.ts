import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { exportJWK, type JWK } from 'jose';
import { openText, sealText } from '../../crypto/envelope.ts';
import type { KeyRing } from '../../crypto/keyring.ts';
import type { SigningKeysStore } from './signing-keys.store.ts';

export const signingKeyBinding = (kid: string) => ({ table: 'signing_keys', id: kid, field: 'private_key' });

export interface SigningKey {
  readonly kid: string;
  readonly alg: 'ES256';
  readonly privateKey: KeyObject;
}

/** How long the key cache is trusted before re-reading the table (rotation by another replica). */
const RELOAD_MS = 60_000;
/** At most one forced re-read for an unknown kid this often. */
const FORCED_RELOAD_MS = 5_000;

/**
 * The broker's token-signing keys (ES256), shared by every replica through the database: private
 * keys are sealed with the envelope key ring. The newest live key signs; every key not yet past its
 * `retire_at` is published in the JWKS, so tokens signed before a rotation verify until they expire.
 */
export function createSigningKeys(deps: { store: SigningKeysStore; ring: KeyRing; now?: () => number }) {
  const now = deps.now ?? Date.now;
  const { store } = deps;
  let lastForced = 0;
  let cache:
    | {
        at: number;
        keys: { kid: string; alg: string; publicJwk: JWK; created_at: number; retire_at: number | null }[];
        /** The newest live key, still sealed: only signing needs it opened (see `signer`). */
        sealed: { kid: string; privateKey: Uint8Array };
        signer?: SigningKey;
      }
    | undefined;

  async function generate(): Promise<string> {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const publicJwk = await exportJWK(publicKey);
    const kid = createHash('sha256')
      .update(JSON.stringify({ crv: publicJwk.crv, kty: publicJwk.kty, x: publicJwk.x, y: publicJwk.y }))
      .digest('base64url');
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    await store.insert({
      kid,
      alg: 'ES256',
      private_key: sealText(deps.ring, pem, signingKeyBinding(kid)),
      public_jwk: JSON.stringify({ ...publicJwk, kid, alg: 'ES256', use: 'sig' }),
      created_at: now(),
      retire_at: null,
    });
    return kid;
  }

  async function load(force = false) {
    const t = now();
    if (!force && cache !== undefined && t - cache.at < RELOAD_MS) return cache;
    let rows = await store.unretiredAt(t);
    if (rows.length === 0) {
      // First use: make one. Two replicas racing make two keys; both are published, one signs.
      await generate();
      rows = await store.live();
    }
    const newest = rows.find((r) => r.retire_at === null) ?? rows[0]!;
    cache = {
      at: t,
      keys: rows.map((r) => ({
        kid: r.kid,
        alg: r.alg,
        publicJwk: JSON.parse(r.public_jwk) as JWK,
        created_at: r.created_at,
        retire_at: r.retire_at,
      })),
      sealed: { kid: newest.kid, privateKey: newest.private_key },
    };
    return cache;
  }

  return {
    /**
     * The key new tokens are signed with. Opened here, not when the table is read: verifying
     * tokens and serving the JWKS need only public keys, so they keep working while the private
     * key cannot be opened (a key ring missing the key it was sealed with).
     */
    async signer(): Promise<SigningKey> {
      const loaded = await load();
      loaded.signer ??= {
        kid: loaded.sealed.kid,
        alg: 'ES256',
        privateKey: createPrivateKey(
          openText(deps.ring, loaded.sealed.privateKey, signingKeyBinding(loaded.sealed.kid)),
        ),
      };
      return loaded.signer;
    },

    /** Public keys for `/.well-known/jwks.json`. */
    async jwks(): Promise<{ keys: JWK[] }> {
      return { keys: (await load()).keys.map((key) => key.publicJwk) };
    },

    /** The public key with this kid, re-reading the table once if it is unknown (rotated elsewhere). */
    async publicKey(kid: string): Promise<JWK | undefined> {
      let found = (await load()).keys.find((key) => key.kid === kid);
      // An unknown kid re-reads the table (a rotation on another replica), at most every few
      // seconds, so forged kids cannot make every request a database read and a key parse.
      if (found === undefined && now() - lastForced >= FORCED_RELOAD_MS) {
        lastForced = now();
        found = (await load(true)).keys.find((key) => key.kid === kid);
      }
      return found?.publicJwk;
    },

    /**
     * Makes a new signing key and schedules the current ones for retirement after `keepMs` (longer
     * than any token they signed can live), so those tokens keep verifying until they expire.
     */
    async rotate(keepMs: number): Promise<{ kid: string; retired: string[] }> {
      const t = now();
      const retired = await store.liveKids();
      const kid = await generate();
      await store.retire(retired, t + keepMs);
      cache = undefined;
      return { kid, retired };
    },

    /** Deletes keys past retirement (housekeeping). */
    async deleteRetired(): Promise<number> {
      return store.deleteRetiredBefore(now());
    },
  };
}

export type SigningKeys = ReturnType<typeof createSigningKeys>;
