import type { StoredCredentials } from '../connections/connections.types.ts';
import { lifetimeSeconds } from '../providers/token-answer-quirks.ts';

/** What a decrypted `tokens` row becomes: the vault's credentials and the token's lifetime. */
export interface ConvertedToken {
  readonly credentials: StoredCredentials;
  readonly expiresAt: number | null;
  readonly issuedAt: number | null;
}

/** A token row that cannot be used (the reason names fields, never values). */
export class TokenShapeError extends Error {}

/** Expiries before this are Go's zero time (`0001-01-01T00:00:00Z`) or nonsense: no expiry. */
const EARLIEST = Date.UTC(1971, 0, 1);

function seconds(value: unknown): number | undefined {
  const n = lifetimeSeconds(value);
  return n !== undefined && n > 0 ? n : undefined;
}

function instant(value: unknown): number | undefined {
  if (value instanceof Date) return value.getTime() >= EARLIEST ? value.getTime() : undefined;
  if (typeof value !== 'string' || value === '') return undefined;
  const t = Date.parse(value);
  return Number.isFinite(t) && t >= EARLIEST ? t : undefined;
}

/**
 * The original's plaintext: for `oauth2` the provider's token response (`access_token`,
 * `refresh_token`, `token_type`, `expires_in` or `expiry`, `id_token`, `scope`…), for the static
 * types the captured credential fields. The id_token is dropped: Nexus never hands one out. The
 * expiry is, in order, the row's `expires_at`, the response's `expiry`, or `expires_in` counted
 * from when the row was written; a token with none of them does not expire.
 */
export function convertToken(
  authType: string,
  plaintext: string,
  row: { expires_at: Date | null; created_at: Date | null },
  now: number,
): ConvertedToken {
  let body: unknown;
  try {
    body = JSON.parse(plaintext);
  } catch {
    throw new TokenShapeError('the decrypted token is not JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new TokenShapeError('the decrypted token is not a JSON object');
  const b = body as Record<string, unknown>;
  if (authType !== 'oauth2') {
    const fields: Record<string, string> = {};
    for (const [name, value] of Object.entries(b)) {
      if (typeof value === 'string') fields[name] = value;
      else if (typeof value === 'number' || typeof value === 'boolean') fields[name] = String(value);
      else if (value !== null)
        throw new TokenShapeError(`credential field "${name.slice(0, 64)}" is not text`);
    }
    if (Object.keys(fields).length === 0) throw new TokenShapeError('the captured credentials are empty');
    return { credentials: { kind: 'static', fields }, expiresAt: null, issuedAt: null };
  }
  if (typeof b.access_token !== 'string' || b.access_token === '')
    throw new TokenShapeError('the token has no access_token');
  const expiresIn = seconds(b.expires_in);
  const written = instant(row.created_at);
  const expiresAt =
    instant(row.expires_at) ??
    instant(b.expiry) ??
    (expiresIn !== undefined && written !== undefined ? written + expiresIn * 1000 : undefined) ??
    null;
  // When this access token was obtained: its lifetime bounds how often it may be refreshed.
  const obtained = expiresAt !== null && expiresIn !== undefined ? expiresAt - expiresIn * 1000 : written;
  const issuedAt = obtained === undefined ? null : Math.min(obtained, now, expiresAt ?? now);
  const refresh = typeof b.refresh_token === 'string' && b.refresh_token !== '' ? b.refresh_token : undefined;
  const scope = typeof b.scope === 'string' && b.scope.trim() !== '' ? b.scope.trim() : undefined;
  return {
    credentials: {
      kind: 'oauth2',
      access_token: b.access_token,
      token_type: typeof b.token_type === 'string' && b.token_type !== '' ? b.token_type : 'bearer',
      ...(refresh ? { refresh_token: refresh } : {}),
      ...(scope ? { scope } : {}),
    },
    expiresAt,
    issuedAt,
  };
}

/** Whether two credentials are the same (the import compares what Nexus holds with the source). */
export function sameCredentials(a: StoredCredentials | undefined, b: StoredCredentials): boolean {
  if (a === undefined || a.kind !== b.kind) return false;
  if (a.kind === 'oauth2' && b.kind === 'oauth2')
    return a.access_token === b.access_token && a.refresh_token === b.refresh_token;
  const fa = (a as Extract<StoredCredentials, { kind: 'static' }>).fields;
  const fb = (b as Extract<StoredCredentials, { kind: 'static' }>).fields;
  const keys = Object.keys(fb);
  return keys.length === Object.keys(fa).length && keys.every((k) => fa[k] === fb[k]);
}
