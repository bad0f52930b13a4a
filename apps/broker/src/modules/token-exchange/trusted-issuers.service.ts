import { randomUUID } from 'node:crypto';
import type { FetchImplementation } from 'jose';
import type { TrustedIssuersTable } from '../../db/schema.ts';
import { commonError } from '../../errors/common.errors.ts';
import { checkIfMatch } from '../../errors/if-match.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import type { Discovery } from '../providers/discovery.ts';
import { trustedIssuerErrors } from './trusted-issuers.errors.ts';
import type { TrustedIssuersStore } from './trusted-issuers.store.ts';
import { createUserTokenVerifier, type UserTokenAlgorithm, type UserTokenResult } from './user-tokens.ts';

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;
const MAX_LISTED = 1000;
const iso = (ms: number) => new Date(ms).toISOString();

export interface TrustedIssuerInput {
  issuer: string;
  jwks_uri?: string | null | undefined;
  /** `use_discovery`, the former name, is folded into this one at the edge (the routes). */
  enable_discovery?: boolean | undefined;
  audience: string;
  algorithms?: UserTokenAlgorithm[] | undefined;
  user_id_claim?: string | undefined;
  tenant_claim?: string | null | undefined;
  permissions_claim?: string | undefined;
  clearance_claim?: string | null | undefined;
}

export interface TrustedIssuerView {
  id: string;
  issuer: string;
  jwks_uri: string | null;
  enable_discovery: boolean;
  /** The same value as `enable_discovery`, under its former name (clients such as the CLI read it). */
  use_discovery: boolean;
  audience: string;
  algorithms: string[];
  user_id_claim: string;
  tenant_claim: string | null;
  permissions_claim: string;
  clearance_claim: string | null;
  version: number;
  created_at: string;
  updated_at: string;
}

function view(row: TrustedIssuersTable): TrustedIssuerView {
  return {
    id: row.id,
    issuer: row.issuer,
    jwks_uri: row.jwks_uri,
    enable_discovery: row.use_discovery === 1,
    use_discovery: row.use_discovery === 1,
    audience: row.audience,
    algorithms: JSON.parse(row.algorithms) as string[],
    user_id_claim: row.user_id_claim,
    tenant_claim: row.tenant_claim,
    permissions_claim: row.permissions_claim,
    clearance_claim: row.clearance_claim,
    version: row.version,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
  };
}

/**
 * Trusted issuers of user tokens (issue #6, on-behalf-of): the developer's identity providers whose
 * access tokens the broker accepts as proof of a user, and how their claims map to user id, tenant,
 * permissions and clearance. `verifyUserToken` checks one such token locally.
 */
export function createTrustedIssuersService(deps: {
  store: TrustedIssuersStore;
  discovery: Pick<Discovery, 'get' | 'refresh'>;
  audit: Pick<AuditService, 'record'>;
  /** Plain http for loopback issuers and key URLs, outside production only (like provider URLs). */
  allowLoopbackHttp: boolean;
  /** Fetch for the issuers' JWKS (the egress guard). */
  jwksFetch?: FetchImplementation;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;

  /** Problems with a URL the broker will trust keys from: https, or loopback http in development. */
  function urlProblem(value: string): string | null {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return 'must be an absolute URL';
    }
    if (url.username || url.password) return 'must not contain credentials';
    if (url.hash) return 'must not contain a fragment';
    if (url.protocol === 'https:') return null;
    if (url.protocol === 'http:' && deps.allowLoopbackHttp && LOOPBACK.test(url.hostname)) return null;
    return deps.allowLoopbackHttp
      ? 'must use https (http is allowed only for localhost in development)'
      : 'must use https';
  }

  /** Every problem of the definition at once; with discovery, the live document must name a usable JWKS. */
  async function validate(row: TrustedIssuersTable): Promise<void> {
    const problems: { path: string; message: string }[] = [];
    const issuerProblem = urlProblem(row.issuer);
    if (issuerProblem) problems.push({ path: 'issuer', message: issuerProblem });
    if (row.jwks_uri !== null) {
      const problem = urlProblem(row.jwks_uri);
      if (problem) problems.push({ path: 'jwks_uri', message: problem });
    }
    if (row.jwks_uri === null && row.use_discovery !== 1)
      problems.push({ path: 'jwks_uri', message: 'set jwks_uri, or enable_discovery: true' });
    if (row.jwks_uri !== null && row.use_discovery === 1)
      problems.push({
        path: 'enable_discovery',
        message: 'set jwks_uri or enable_discovery: true, not both',
      });
    if (problems.length > 0)
      throw errorFrom(trustedIssuerErrors, 'invalid_trusted_issuer', { details: problems });
    if (row.use_discovery !== 1) return;
    // Outside any transaction: a network call (STYLE rule 7).
    let jwksUri: string | undefined;
    try {
      jwksUri = (await deps.discovery.refresh(row.issuer)).jwks_uri;
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message.slice(0, 300) : 'unknown error';
      throw errorFrom(trustedIssuerErrors, 'trusted_issuer_discovery_failed', {
        details: [{ path: 'issuer', message: reason }],
        cause,
      });
    }
    const problem = jwksUri === undefined ? 'the discovery document has no jwks_uri' : urlProblem(jwksUri);
    if (problem)
      throw errorFrom(trustedIssuerErrors, 'trusted_issuer_discovery_failed', {
        details: [{ path: 'jwks_uri', message: `discovered jwks_uri ${problem}` }],
      });
  }

  const verifier = createUserTokenVerifier({
    issuers: deps.store,
    discovery: deps.discovery,
    keysUrlAllowed: (url) => urlProblem(url) === null,
    ...(deps.jwksFetch ? { jwksFetch: deps.jwksFetch } : {}),
    now,
  });

  async function liveRow(id: string): Promise<TrustedIssuersTable> {
    const row = await deps.store.findLive(id);
    if (row === undefined) throw errorFrom(trustedIssuerErrors, 'trusted_issuer_not_found');
    return row;
  }

  async function takenError(issuer: string, cause: unknown): Promise<unknown> {
    const taken = await deps.store.findLiveByIssuer(issuer);
    return taken
      ? errorFrom(trustedIssuerErrors, 'trusted_issuer_taken', { cause, details: { issuer } })
      : cause;
  }

  return {
    async create(ctx: AuditContext, input: TrustedIssuerInput): Promise<TrustedIssuerView> {
      const t = now();
      const row: TrustedIssuersTable = {
        id: randomUUID(),
        issuer: input.issuer,
        jwks_uri: input.jwks_uri ?? null,
        use_discovery: input.enable_discovery ? 1 : 0,
        audience: input.audience,
        algorithms: JSON.stringify([...new Set(input.algorithms ?? ['RS256', 'ES256'])]),
        user_id_claim: input.user_id_claim ?? 'sub',
        tenant_claim: input.tenant_claim ?? null,
        permissions_claim: input.permissions_claim ?? 'permissions',
        clearance_claim: input.clearance_claim ?? null,
        version: 1,
        created_at: t,
        updated_at: t,
        deleted_at: null,
      };
      if (await deps.store.findLiveByIssuer(row.issuer))
        throw errorFrom(trustedIssuerErrors, 'trusted_issuer_taken', { details: { issuer: row.issuer } });
      await validate(row);
      try {
        await deps.store.insert(row);
      } catch (cause) {
        throw await takenError(row.issuer, cause);
      }
      await deps.audit.record(ctx, {
        action: 'trusted_issuer.created',
        resourceType: 'trusted_issuer',
        resourceId: row.id,
        details: { issuer: row.issuer, audience: row.audience },
      });
      return view(row);
    },

    async list(): Promise<TrustedIssuerView[]> {
      return (await deps.store.listLive(MAX_LISTED)).map(view);
    },

    async get(id: string): Promise<TrustedIssuerView> {
      return view(await liveRow(id));
    },

    async update(
      ctx: AuditContext,
      id: string,
      patch: Partial<TrustedIssuerInput>,
      ifMatch?: string,
    ): Promise<TrustedIssuerView> {
      const row = await liveRow(id);
      checkIfMatch(ifMatch, row.version);
      const set: Partial<TrustedIssuersTable> = { updated_at: now(), version: row.version + 1 };
      if (patch.issuer !== undefined) set.issuer = patch.issuer;
      if (patch.jwks_uri !== undefined) set.jwks_uri = patch.jwks_uri;
      if (patch.enable_discovery !== undefined) set.use_discovery = patch.enable_discovery ? 1 : 0;
      if (patch.audience !== undefined) set.audience = patch.audience;
      if (patch.algorithms !== undefined) set.algorithms = JSON.stringify([...new Set(patch.algorithms)]);
      if (patch.user_id_claim !== undefined) set.user_id_claim = patch.user_id_claim;
      if (patch.tenant_claim !== undefined) set.tenant_claim = patch.tenant_claim;
      if (patch.permissions_claim !== undefined) set.permissions_claim = patch.permissions_claim;
      if (patch.clearance_claim !== undefined) set.clearance_claim = patch.clearance_claim;
      const next = { ...row, ...set };
      if (next.issuer !== row.issuer && (await deps.store.findLiveByIssuer(next.issuer)))
        throw errorFrom(trustedIssuerErrors, 'trusted_issuer_taken', { details: { issuer: next.issuer } });
      await validate(next);
      let updated: boolean;
      try {
        updated = await deps.store.update(row.id, row.version, set);
      } catch (cause) {
        throw await takenError(next.issuer, cause);
      }
      if (!updated) throw commonError('version_conflict');
      await deps.audit.record(ctx, {
        action: 'trusted_issuer.updated',
        resourceType: 'trusted_issuer',
        resourceId: row.id,
        details: { issuer: next.issuer, changed: Object.keys(patch).sort() },
      });
      return view(next);
    },

    async remove(ctx: AuditContext, id: string, ifMatch?: string): Promise<void> {
      const row = await liveRow(id);
      checkIfMatch(ifMatch, row.version);
      if (!(await deps.store.softDelete(row.id, now())))
        throw errorFrom(trustedIssuerErrors, 'trusted_issuer_not_found');
      await deps.audit.record(ctx, {
        action: 'trusted_issuer.deleted',
        resourceType: 'trusted_issuer',
        resourceId: row.id,
        details: { issuer: row.issuer },
      });
    },

    /**
     * Whether the issuer an on-behalf-of session's user token was verified under is still trusted
     * as it was: the same row, live, at the same version. A developer's callback (`callback:`) is
     * not a trusted issuer; sessions from before issuers were recorded need the `iss` still trusted.
     */
    async stillTrusted(obo: {
      issuer: string;
      issuer_id?: string;
      issuer_version?: number;
    }): Promise<boolean> {
      if (obo.issuer.startsWith('callback:')) return true;
      if (obo.issuer_id === undefined) return (await deps.store.findLiveByIssuer(obo.issuer)) !== undefined;
      const row = await deps.store.findLive(obo.issuer_id);
      return row !== undefined && row.version === obo.issuer_version && row.issuer === obo.issuer;
    },

    /**
     * Verifies a user's access token from a trusted issuer (signature, issuer, audience, expiry,
     * not-before, algorithm allow-list) and maps its claims; never throws for a bad token.
     */
    verifyUserToken(token: string, options?: { audience?: string }): Promise<UserTokenResult> {
      return verifier.verify(token, options);
    },
  };
}

export type TrustedIssuersService = ReturnType<typeof createTrustedIssuersService>;
