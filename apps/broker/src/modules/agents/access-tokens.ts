import { decodeProtectedHeader, importJWK, type JWTPayload, jwtVerify } from 'jose';
import type { AgentPrincipal } from '../../auth/principal.ts';
import type { AgentsTable } from '../../db/schema.ts';
import type { AgentsStore } from './agents.store.ts';
import { scopesStillHeld } from './grants.ts';
import type { SigningKeys } from './signing-keys.ts';

const list = (json: string) => JSON.parse(json) as string[];

/** When a token was issued, in ms: its signed `iat_ms` when that agrees with `iat`, else `iat`. */
function issuedMs(payload: JWTPayload): number {
  const seconds = (payload.iat ?? 0) * 1000;
  const ms = payload.iat_ms;
  return typeof ms === 'number' && ms >= seconds && ms < seconds + 1000 ? ms : seconds;
}

/** The principal of an agent row, with the scopes its credential carries. */
export function principalOf(row: AgentsTable, scopes: readonly string[]): AgentPrincipal {
  return {
    kind: 'agent',
    agentUuid: row.id,
    agentId: row.agent_id,
    scopes,
    allowedProviders: list(row.allowed_providers),
    allowedWorkspaces: list(row.allowed_workspaces),
    allowedSecrets: list(row.allowed_secrets),
  };
}

/** Verification of the broker's own agent access tokens (`typ: at+jwt`, ES256). */
export function createAccessTokenVerifier(deps: {
  store: Pick<AgentsStore, 'findById'>;
  signingKeys: Pick<SigningKeys, 'publicKey'>;
  issuer: string;
  tokenTtlSeconds: number;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;

  /*
   * Hot path of every agent request. A token's signature, issuer, audience and type never change,
   * so a verified token is remembered (bounded, until its expiry) and not re-verified; what can
   * change (the agent being deactivated or deleted) is read from the database every time, by one
   * prepared primary-key query (`store.findById`, coalesced across concurrent requests on PostgreSQL).
   */
  const verified = new Map<string, JWTPayload>();
  const VERIFIED_MAX = 10_000;
  function remember(token: string, payload: JWTPayload): void {
    if (verified.size >= VERIFIED_MAX) verified.delete(verified.keys().next().value!);
    verified.set(token, payload);
  }
  const publicKeys = new Map<string, { jwk: unknown; key: Awaited<ReturnType<typeof importJWK>> }>();
  async function publicKeyFor(kid: string) {
    // The signing-key list is cached (and re-read) by signingKeys; a kid it no longer has is gone.
    const jwk = await deps.signingKeys.publicKey(kid);
    if (jwk === undefined) {
      publicKeys.delete(kid);
      return undefined;
    }
    const cached = publicKeys.get(kid);
    if (cached !== undefined && cached.jwk === jwk) return cached.key;
    const key = await importJWK(jwk, 'ES256');
    publicKeys.set(kid, { jwk, key });
    return key;
  }

  /**
   * The principal behind an agent access token, with the token's claims, or null: signature with a
   * published key, issuer, audience, expiry, and the agent still live and active (deactivation takes
   * effect at once).
   */
  async function check(token: string): Promise<{ principal: AgentPrincipal; claims: JWTPayload } | null> {
    let kid: string | undefined;
    try {
      const header = decodeProtectedHeader(token);
      if (header.alg !== 'ES256' || header.typ !== 'at+jwt') return null;
      kid = header.kid;
    } catch {
      return null;
    }
    if (kid === undefined) return null;
    const t = now();
    // The key must still be published (a rotation that retires it, or a deletion, ends its
    // tokens within the key cache's reload interval on every replica).
    const key = await publicKeyFor(kid);
    if (key === undefined) {
      verified.delete(token);
      return null;
    }
    let payload = verified.get(token);
    if (payload !== undefined && (payload.exp ?? 0) * 1000 <= t) {
      verified.delete(token);
      payload = undefined;
    }
    if (payload === undefined) {
      try {
        ({ payload } = await jwtVerify(token, key, {
          issuer: deps.issuer,
          audience: deps.issuer,
          algorithms: ['ES256'],
          typ: 'at+jwt',
          currentDate: new Date(t),
          requiredClaims: ['exp', 'sub'],
        }));
      } catch {
        return null;
      }
      // Only tokens this broker would issue: no lifetime longer than the configured one.
      if ((payload.exp ?? 0) - (payload.iat ?? 0) > deps.tokenTtlSeconds) return null;
      remember(token, payload);
    }
    // The agent is read on every request (deactivation takes effect at once); nothing is cached.
    const row = await deps.store.findById(payload.sub!);
    if (row === undefined || row.deleted_at !== null || row.disabled_at !== null) return null;
    // Issued before the agent was last deactivated (or in that very millisecond): reactivation
    // does not bring it back.
    if (row.tokens_not_before !== null && issuedMs(payload) <= row.tokens_not_before) return null;
    // Removing a scope from the agent takes it from the tokens already issued, as deactivation does.
    const scopes = scopesStillHeld(payload.scope, row);
    // Introspection shows the same narrowed scopes as the requests get.
    const claims = typeof payload.scope === 'string' ? { ...payload, scope: scopes.join(' ') } : payload;
    return { principal: principalOf(row, scopes), claims };
  }

  return {
    /** The principal behind an agent access token, or null (see `check`). */
    verify: async (token: string): Promise<AgentPrincipal | null> => (await check(token))?.principal ?? null,
    /** The claims of an agent access token that `verify` accepts, or null: what introspection shows. */
    claims: async (token: string): Promise<JWTPayload | null> => (await check(token))?.claims ?? null,
  };
}
