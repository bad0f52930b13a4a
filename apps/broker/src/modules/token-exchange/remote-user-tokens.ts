import type { SafeFetch } from '../../egress/safe-fetch.ts';
import type { UserTokenChecker } from './obo.ts';
import { clearanceLevel, storable, usableUserId } from './user-tokens.ts';

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const MAX_TOKEN = 16 * 1024;

/**
 * The remote verification callback (`BACKEND_AUTH_URL`) for identity providers that issue opaque
 * user tokens: the broker POSTs `{"token": …}` (with `Authorization: Bearer BACKEND_AUTH_TOKEN`) to
 * the developer's backend, which answers `{"active": true, "user_id", "tenant_id"?,
 * "permissions": [...], "clearance_level"?, "expires_at"?}` for a valid token, anything else for an
 * invalid one. JWTs keep being verified locally against the trusted issuers; only tokens that are not
 * JWTs go to the callback. The call goes through the egress guard like every outbound call.
 */
export function withRemoteVerification(
  local: UserTokenChecker,
  remote: {
    url: string;
    token: string | undefined;
    fetch: SafeFetch;
    maxLifetimeMs: number;
    now?: () => number;
  },
): UserTokenChecker {
  const now = remote.now ?? Date.now;
  return {
    async verifyUserToken(token) {
      if (JWT_SHAPE.test(token)) return local.verifyUserToken(token);
      if (token.length === 0 || token.length > MAX_TOKEN) return { ok: false, reason: 'malformed' };
      let answer: Awaited<ReturnType<SafeFetch>>;
      try {
        answer = await remote.fetch(remote.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json',
            ...(remote.token ? { authorization: `Bearer ${remote.token}` } : {}),
          },
          body: JSON.stringify({ token }),
        });
      } catch {
        return { ok: false, reason: 'remote_unavailable' };
      }
      if (answer.status !== 200)
        return { ok: false, reason: answer.status >= 500 ? 'remote_unavailable' : 'remote_rejected' };
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(answer.body.toString('utf8')) as Record<string, unknown>;
      } catch {
        return { ok: false, reason: 'remote_unavailable' };
      }
      const text = (v: unknown) => (typeof v === 'string' && v.length > 0 && v.length <= 256 ? v : null);
      const userId = text(body.user_id);
      if (body.active !== true) return { ok: false, reason: 'remote_rejected' };
      if (userId === null) return { ok: false, reason: 'missing_user' };
      if (!usableUserId(userId)) return { ok: false, reason: 'invalid_user' };
      const permissions = Array.isArray(body.permissions)
        ? body.permissions.filter((p): p is string => typeof p === 'string' && p.length <= 128).slice(0, 200)
        : [];
      const t = now();
      const expiresAt =
        typeof body.expires_at === 'string' && !Number.isNaN(Date.parse(body.expires_at))
          ? Math.min(Date.parse(body.expires_at), t + remote.maxLifetimeMs)
          : t + remote.maxLifetimeMs;
      if (expiresAt <= t) return { ok: false, reason: 'expired' };
      return {
        ok: true,
        issuer: `callback:${new URL(remote.url).origin}`,
        userId,
        tenantId: storable(text(body.tenant_id)),
        permissions,
        clearance: clearanceLevel(body.clearance_level),
        expiresAt,
      };
    },
  };
}
