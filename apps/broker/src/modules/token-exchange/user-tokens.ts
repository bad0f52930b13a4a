import {
  createRemoteJWKSet,
  customFetch,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type FetchImplementation,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import { strongKeysOnly } from '../../crypto/verify-keys.ts';
import type { TrustedIssuersTable } from '../../db/schema.ts';
import type { Discovery } from '../providers/discovery.ts';

/**
 * JWS algorithms a trusted issuer may allow: asymmetric only. `none` and the HMAC family are never
 * accepted (a verifier that takes HS256 with the issuer's public key as the secret accepts forgeries).
 */
export const USER_TOKEN_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;
export type UserTokenAlgorithm = (typeof USER_TOKEN_ALGORITHMS)[number];

export type UserTokenRefusal =
  | 'malformed'
  | 'unknown_issuer'
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_audience'
  | 'algorithm_not_allowed'
  | 'missing_user'
  /** The user claim is not an id a grant can name: `*`, control characters, unpaired surrogates. */
  | 'invalid_user'
  /** The tenant claim is longer than 256 characters. */
  | 'invalid_tenant'
  /** The issuer's keys (its JWKS, or the discovery document naming it) could not be fetched. */
  | 'keys_unavailable';

/** A user token from a trusted issuer, verified, with its claims mapped; or why it was refused. */
export type UserTokenResult =
  | {
      ok: true;
      /** The trusted issuer's row id and version (what the token was trusted under), and its `iss`. */
      issuerId: string;
      issuerVersion: number;
      issuer: string;
      userId: string;
      tenantId: string | null;
      permissions: string[];
      /** Its original JSON type: a clearance level of 2 stays the number 2. */
      clearance: string | number | null;
      /** The token's `exp`, epoch milliseconds. */
      expiresAt: number;
      /** The OAuth scopes of the token (its `scope` claim, RFC 9068 §2.2.3). */
      scopes: string[];
      /** The OAuth client the token was issued to (`azp`, else `client_id`), if it says. */
      clientId: string | null;
    }
  | { ok: false; reason: UserTokenRefusal };

/** Tokens longer than this are refused unparsed. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
const CONTROL = /[\u0000-\u001f\u007f]/;
const MAX_TOKEN_LENGTH = 16 * 1024;
/** Seconds of clock skew tolerated on `exp`, `nbf` and `iat` between the issuer and the broker. */
export const USER_TOKEN_CLOCK_TOLERANCE_S = 30;
/** Remote key sets kept (one per JWKS URL); beyond this the oldest is dropped. */
const MAX_KEY_SETS = 256;

const refuse = (reason: UserTokenRefusal): UserTokenResult => ({ ok: false, reason });

/**
 * Whether a user id from a token can be acted for: not `*` (which names every user in a grant, so
 * a person whose id it is would reach everyone's connections), and text every database stores as
 * it is (no control character, no unpaired surrogate).
 */
export function usableUserId(userId: string): boolean {
  return userId !== '*' && userId.isWellFormed() && !/\p{Cc}/u.test(userId);
}

/**
 * A claim stored with a session (tenant, clearance) as text every database stores as it is: an
 * unpaired surrogate (half an emoji) and a control character (a NUL) become U+FFFD, where
 * PostgreSQL would refuse the session's JSON when it is read back (`obo::jsonb`), and with it
 * every admin listing that reads that row.
 */
export function storable<T extends string | number | null>(value: T): T {
  return (typeof value === 'string' ? value.toWellFormed().replace(/\p{Cc}/gu, '\uFFFD') : value) as T;
}

/** A claim as text: strings as they are, finite numbers printed; anything else is absent. */
function text(value: unknown): string | null {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return null;
}

/** A clearance level as the token carries it: a string, or a finite number (kept a number). */
export function clearanceLevel(value: unknown): string | number | null {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  return typeof value === 'string' && value !== '' && value.length <= 256 ? storable(value) : null;
}

/** Permissions as a JSON array of strings, or a space-separated string (the `scope` claim, RFC 8693 §4.2). */
function permissionList(value: unknown): string[] {
  if (typeof value === 'string') return [...new Set(value.split(/\s+/).filter(Boolean))];
  if (Array.isArray(value))
    return [...new Set(value.filter((p): p is string => typeof p === 'string' && p !== ''))];
  return [];
}

function refusalFor(error: unknown): UserTokenRefusal {
  if (error instanceof errors.JWTExpired) return 'expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === 'missing' || error.reason === 'invalid') return 'malformed';
    if (error.claim === 'nbf' || error.claim === 'iat') return 'not_yet_valid';
    if (error.claim === 'aud') return 'wrong_audience';
    if (error.claim === 'iss') return 'unknown_issuer';
    return 'malformed';
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return 'algorithm_not_allowed';
  if (
    error instanceof errors.JWSSignatureVerificationFailed ||
    error instanceof errors.JWKSNoMatchingKey ||
    error instanceof errors.JWKSMultipleMatchingKeys ||
    error instanceof errors.JOSENotSupported ||
    error instanceof errors.JWKInvalid
  )
    return 'bad_signature';
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) return 'malformed';
  // JWKSTimeout, JWKSInvalid, network failures: the keys could not be had.
  return 'keys_unavailable';
}

/**
 * Verifies users' access tokens locally (issue #6, on-behalf-of): the trusted issuer is chosen by
 * the token's unverified `iss`, then the signature is checked against that issuer's published keys
 * with its algorithm allow-list, and `iss`, `aud`, `exp`, `nbf` (and a future `iat`) are checked
 * with a small clock tolerance. Nothing about the token is trusted before that.
 */
export function createUserTokenVerifier(deps: {
  issuers: { findLiveByIssuer(issuer: string): Promise<TrustedIssuersTable | undefined> };
  discovery: Pick<Discovery, 'get'>;
  /** Whether keys may be fetched from a discovered JWKS URL (https, or loopback http in development). */
  keysUrlAllowed: (url: string) => boolean;
  /** Fetch for JWKS (the egress guard); jose's own fetch when absent. */
  jwksFetch?: FetchImplementation;
  now?: () => number;
  clockToleranceSeconds?: number;
}) {
  const now = deps.now ?? Date.now;
  const tolerance = deps.clockToleranceSeconds ?? USER_TOKEN_CLOCK_TOLERANCE_S;
  // jose's remote sets cache the keys and refetch (rate-limited) on an unknown `kid`.
  const keySets = new Map<string, JWTVerifyGetKey>();

  function keySet(url: string): JWTVerifyGetKey {
    let set = keySets.get(url);
    if (set === undefined) {
      if (keySets.size >= MAX_KEY_SETS) keySets.delete(keySets.keys().next().value!);
      set = strongKeysOnly(
        createRemoteJWKSet(new URL(url), {
          timeoutDuration: 5000,
          cooldownDuration: 30_000,
          ...(deps.jwksFetch ? { [customFetch]: deps.jwksFetch } : {}),
        }),
      );
      keySets.set(url, set);
    }
    return set;
  }

  /** The issuer's JWKS URL: configured, or from its (cached) OpenID discovery document. */
  async function jwksUriOf(row: TrustedIssuersTable): Promise<string | null> {
    if (row.jwks_uri !== null) return row.jwks_uri;
    if (row.use_discovery !== 1) return null;
    let discovered: string | undefined;
    try {
      discovered = (await deps.discovery.get(row.issuer)).jwks_uri;
    } catch {
      return null;
    }
    // The document may have changed since the issuer was registered: its JWKS URL is checked again.
    return discovered !== undefined && deps.keysUrlAllowed(discovered) ? discovered : null;
  }

  return {
    /**
     * `audience`: the audience the token must carry instead of the issuer's own (`/mcp` takes tokens
     * issued for the broker as a resource, RFC 8707).
     */
    async verify(token: string, options: { audience?: string } = {}): Promise<UserTokenResult> {
      if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH || token.split('.').length !== 3)
        return refuse('malformed');
      let alg: unknown;
      let unverified: JWTPayload;
      try {
        alg = decodeProtectedHeader(token).alg;
        unverified = decodeJwt(token);
      } catch {
        return refuse('malformed');
      }
      // No trusted issuer's identifier holds a control character (issuers are URLs), so such an
      // `iss` is unknown without asking the database (which may refuse to look a NUL up).
      if (
        typeof unverified.iss !== 'string' ||
        unverified.iss === '' ||
        unverified.iss.length > 2048 ||
        CONTROL.test(unverified.iss)
      )
        return refuse('unknown_issuer');
      const row = await deps.issuers.findLiveByIssuer(unverified.iss);
      if (row === undefined) return refuse('unknown_issuer');
      const algorithms = (JSON.parse(row.algorithms) as string[]).filter((a) =>
        (USER_TOKEN_ALGORITHMS as readonly string[]).includes(a),
      );
      // Before any key is fetched: `none`, HS* and anything else the issuer does not use.
      if (typeof alg !== 'string' || !algorithms.includes(alg)) return refuse('algorithm_not_allowed');
      const jwksUri = await jwksUriOf(row);
      if (jwksUri === null) return refuse('keys_unavailable');
      const t = now();
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, keySet(jwksUri), {
          issuer: row.issuer,
          audience: options.audience ?? row.audience,
          algorithms,
          currentDate: new Date(t),
          clockTolerance: tolerance,
          requiredClaims: ['exp'],
        }));
      } catch (error) {
        return refuse(refusalFor(error));
      }
      // jose checks `iat` only with maxTokenAge: a token issued in the future is not valid yet either.
      if (typeof payload.iat === 'number' && payload.iat > t / 1000 + tolerance)
        return refuse('not_yet_valid');
      const userId = text(payload[row.user_id_claim]);
      if (userId === null || userId.length > 256) return refuse('missing_user');
      if (!usableUserId(userId)) return refuse('invalid_user');
      const tenantId = row.tenant_claim === null ? null : storable(text(payload[row.tenant_claim]));
      if (tenantId !== null && tenantId.length > 256) return refuse('invalid_tenant');
      return {
        ok: true,
        issuerId: row.id,
        issuerVersion: row.version,
        issuer: row.issuer,
        userId,
        tenantId,
        permissions: permissionList(payload[row.permissions_claim]),
        clearance: row.clearance_claim === null ? null : clearanceLevel(payload[row.clearance_claim]),
        expiresAt: (payload.exp as number) * 1000,
        scopes: permissionList(payload.scope),
        clientId: text(payload.azp) ?? text(payload.client_id),
      };
    },
  };
}

export type UserTokenVerifier = ReturnType<typeof createUserTokenVerifier>;
