import { createHash, timingSafeEqual } from 'node:crypto';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  type FetchImplementation,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import { strongKeysOnly } from '../../crypto/verify-keys.ts';
import type { AgentsTable } from '../../db/schema.ts';
import type { AgentsStore } from './agents.store.ts';
import { CLIENT_ASSERTION_ALGORITHMS } from './jwks.ts';

/** Client secrets look like `nxs_<secret id>_<43 random chars>`: the id finds the row, the hash is compared. */
const SECRET_PATTERN = /^nxs_([a-f0-9]{16})_([A-Za-z0-9_-]{43})$/;
/** An agent id as agents are registered (agents.routes.ts): what a client id or assertion issuer may be. */
export const AGENT_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const MAX_ASSERTION_LIFETIME_S = 300;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Client authentication presented at the token endpoint (RFC 6749 §2.3, RFC 7523). */
export interface ClientAuthentication {
  basic?: { clientId: string; secret: string };
  clientId?: string;
  clientSecret?: string;
  assertionType?: string;
  assertion?: string;
}

/**
 * Agent client authentication at the token endpoint (RFC 6749 §2.3, RFC 7523): a client secret,
 * or a private-key JWT assertion (one use per `jti`) checked against the agent's `jwks` or
 * `jwks_uri`. Returns the agent, or null; every failure looks the same to the caller.
 */
export function createClientAuthenticator(deps: {
  store: Pick<AgentsStore, 'findLiveByAgentId' | 'insertAssertion' | 'findSecretWithAgent'>;
  issuer: string;
  tokenEndpoint: string;
  jwksFetch?: FetchImplementation | undefined;
  now?: () => number;
}) {
  const { store } = deps;
  const now = deps.now ?? Date.now;
  const remoteSets = new Map<string, JWTVerifyGetKey>();

  function keySetFor(row: AgentsTable): JWTVerifyGetKey | undefined {
    if (row.jwks !== null) return strongKeysOnly(createLocalJWKSet(JSON.parse(row.jwks)));
    if (row.jwks_uri !== null) {
      let set = remoteSets.get(row.jwks_uri);
      if (set === undefined) {
        set = strongKeysOnly(
          createRemoteJWKSet(new URL(row.jwks_uri), {
            timeoutDuration: 5000,
            cooldownDuration: 30_000,
            ...(deps.jwksFetch ? { [customFetch]: deps.jwksFetch } : {}),
          }),
        );
        remoteSets.set(row.jwks_uri, set);
      }
      return set;
    }
    return undefined;
  }

  /** Which agent is authenticating, or null. Every failure looks the same to the caller. */
  return async function authenticateClient(auth: ClientAuthentication): Promise<AgentsTable | null> {
    const t = now();
    if (auth.assertion !== undefined || auth.assertionType !== undefined) {
      if (auth.assertionType !== ASSERTION_TYPE || auth.assertion === undefined) return null;
      let claimed: string | undefined;
      try {
        const payload = JSON.parse(
          Buffer.from(auth.assertion.split('.')[1] ?? '', 'base64url').toString('utf8'),
        );
        claimed = typeof payload.iss === 'string' ? payload.iss : undefined;
      } catch {
        return null;
      }
      if (claimed === undefined || !AGENT_ID.test(claimed)) return null;
      if (auth.clientId !== undefined && auth.clientId !== claimed) return null;
      const row = await store.findLiveByAgentId(claimed);
      const keys = row === undefined ? undefined : keySetFor(row);
      if (row === undefined || keys === undefined) return null;
      try {
        const { payload } = await jwtVerify(auth.assertion, keys, {
          issuer: row.agent_id,
          subject: row.agent_id,
          audience: [deps.tokenEndpoint, deps.issuer],
          algorithms: [...CLIENT_ASSERTION_ALGORITHMS],
          maxTokenAge: `${MAX_ASSERTION_LIFETIME_S}s`,
          currentDate: new Date(t),
          requiredClaims: ['exp', 'jti', 'iat'],
        });
        if ((payload.exp ?? 0) - (payload.iat ?? 0) > MAX_ASSERTION_LIFETIME_S) return null;
        // One use per assertion id (RFC 7523 §3: jti replay).
        try {
          await store.insertAssertion(sha256(`${row.id}:${payload.jti}`), (payload.exp ?? 0) * 1000);
        } catch {
          return null;
        }
      } catch {
        return null;
      }
      return row;
    }
    const clientId = auth.basic?.clientId ?? auth.clientId;
    const secret = auth.basic?.secret ?? auth.clientSecret;
    if (clientId === undefined || secret === undefined || secret.length > 256) return null;
    const match = SECRET_PATTERN.exec(secret);
    if (match === null) return null;
    const found = await store.findSecretWithAgent(match[1]!);
    if (found === undefined || found.agent_id !== clientId) return null;
    if (
      found.secret_revoked_at !== null ||
      (found.secret_expires_at !== null && found.secret_expires_at <= t)
    )
      return null;
    if (!timingSafeEqual(Buffer.from(found.secret_hash, 'hex'), createHash('sha256').update(secret).digest()))
      return null;
    const { secret_hash: _h, secret_expires_at: _e, secret_revoked_at: _r, ...row } = found;
    return row;
  };
}
