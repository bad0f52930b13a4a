import { randomBytes, timingSafeEqual } from 'node:crypto';
import { envKeyMatcher } from '../../auth/env-keys.ts';
import { ADMIN_SCOPES, type AdminPrincipal, type AdminScope, type Principal } from '../../auth/principal.ts';
import type { NamedApiKey } from '../../config/load.ts';
import { sha256Bytes } from '../../crypto/digest.ts';
import { commonError } from '../../errors/common.errors.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import { adminKeyErrors } from './admin-keys.errors.ts';
import type { AdminKeysStore } from './admin-keys.store.ts';

/**
 * Admin API keys look like `nxa_<id>_<secret>`: the id finds the row with one indexed lookup, the
 * SHA-256 of the whole key is compared in constant time. Keys are 256-bit random, so a fast hash
 * is enough; only the hash is stored and the key is shown once.
 */
const KEY_PATTERN = /^nxa_([a-f0-9]{16})_([A-Za-z0-9_-]{43})$/;

/** A stored key's id (its value's second part): how revocation tells an id from a name. */
const KEY_ID = /^[a-f0-9]{16}$/;
/** Stored admin keys live at once (`admin_key_limit_reached` beyond). */
export const MAX_LIVE_KEYS = 1000;

export interface AdminKeyView {
  id: string;
  name: string;
  scope: AdminScope;
  created_at: string;
  created_by: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

const hash = sha256Bytes;
/** A scope this broker does not know (a row written by a newer one) is no scope at all. */
const knownScope = (value: string): AdminScope | undefined =>
  (ADMIN_SCOPES as readonly string[]).includes(value) ? (value as AdminScope) : undefined;
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A principal from a key that authenticated: its scope is always known. */
export type KeyPrincipal = AdminPrincipal & { readonly scope: AdminScope };

export function createAdminKeysService(deps: {
  store: AdminKeysStore;
  audit: Pick<AuditService, 'record'>;
  envKeys: readonly NamedApiKey[];
  now?: () => number;
}) {
  const { store, audit } = deps;
  const now = deps.now ?? Date.now;
  const envKey = envKeyMatcher(deps.envKeys);
  // last_used_at is advisory: write it at most once a minute per key, not on every request.
  const lastTouched = new Map<string, number>();

  function view(row: {
    id: string;
    name: string;
    scope: string;
    created_at: number;
    created_by: string;
    last_used_at: number | null;
    revoked_at: number | null;
  }): AdminKeyView {
    return {
      id: row.id,
      name: row.name,
      // Only `create` writes the column, always with a known scope (the column defaults to `full`).
      scope: row.scope as AdminScope,
      created_at: iso(row.created_at)!,
      created_by: row.created_by,
      last_used_at: iso(row.last_used_at),
      revoked_at: iso(row.revoked_at),
    };
  }

  async function resolveLive(idOrName: string) {
    const row = KEY_ID.test(idOrName) ? await store.findById(idOrName) : await store.findLiveByName(idOrName);
    if (row === undefined || row.revoked_at !== null) throw errorFrom(adminKeyErrors, 'admin_key_not_found');
    return row;
  }

  return {
    /** Returns who is calling, or null for an unknown or revoked key. */
    async authenticate(presented: string): Promise<KeyPrincipal | null> {
      if (presented.length > 256) return null;
      const match = KEY_PATTERN.exec(presented);
      if (match) {
        const row = await store.findById(match[1]!);
        if (row === undefined || row.revoked_at !== null) return null;
        if (!timingSafeEqual(Buffer.from(row.key_hash, 'hex'), hash(presented))) return null;
        const scope = knownScope(row.scope);
        if (scope === undefined) return null;
        const t = now();
        if ((lastTouched.get(row.id) ?? 0) < t - 60_000) {
          lastTouched.set(row.id, t);
          await store.touch(row.id, t);
        }
        return { kind: 'admin', keyId: row.id, name: row.name, scope };
      }
      const env = envKey(presented);
      return env === undefined ? null : { kind: 'admin', keyId: env.name, name: env.name, scope: env.scope };
    },

    /**
     * Creates a key of `scope` (default `full`); the returned `key` is the only time the secret
     * exists outside the caller.
     */
    async create(
      ctx: AuditContext,
      name: string,
      scope: AdminScope = 'full',
    ): Promise<AdminKeyView & { key: string }> {
      if (name.startsWith('env:'))
        throw errorFrom(adminKeyErrors, 'admin_key_name_taken', {
          message: 'Names starting with "env:" are reserved for keys from the environment.',
        });
      // A name shaped like an id would be read as one: revoking "that name" would revoke the key
      // whose id it is (a rogue key named after the operator's key id), never this one.
      if (KEY_ID.test(name))
        throw errorFrom(adminKeyErrors, 'admin_key_name_taken', {
          message: 'Names of 16 lowercase hexadecimal characters are reserved: they read as key ids.',
        });
      // `GET /admin/v1/admin-keys/current` is the calling key: a key of that name would be ambiguous.
      if (name === 'current')
        throw errorFrom(adminKeyErrors, 'admin_key_name_taken', {
          message: 'The name "current" is reserved: /admin/v1/admin-keys/current is the calling key.',
        });
      if (await store.findLiveByName(name)) throw errorFrom(adminKeyErrors, 'admin_key_name_taken');
      // Bounded, so that the list of live keys is always whole (a key hidden past a page would be
      // a key nobody reviews).
      if ((await store.countLive()) >= MAX_LIVE_KEYS)
        throw errorFrom(adminKeyErrors, 'admin_key_limit_reached');
      const id = randomBytes(8).toString('hex');
      const key = `nxa_${id}_${randomBytes(32).toString('base64url')}`;
      const row = {
        id,
        name,
        key_hash: hash(key).toString('hex'),
        created_at: now(),
        created_by: ctx.actor,
        last_used_at: null,
        revoked_at: null,
        scope,
      };
      try {
        await store.insert(row);
      } catch (cause) {
        // The partial unique index closes the race between two creates of the same name.
        if (await store.findLiveByName(name))
          throw errorFrom(adminKeyErrors, 'admin_key_name_taken', { cause });
        throw cause;
      }
      await audit.record(ctx, {
        action: 'admin_key.created',
        resourceType: 'admin_key',
        resourceId: id,
        details: { name, scope },
      });
      return { ...view(row), key };
    },

    /** The key making the call (`GET /admin/v1/admin-keys/current`); never its value. */
    current(principal: Principal | undefined): {
      id: string;
      name: string;
      scope: AdminScope;
      source: 'stored' | 'environment';
    } {
      // The admin routes admit admin keys only, and a key that authenticated has a scope.
      if (principal?.kind !== 'admin' || principal.scope === undefined) throw commonError('forbidden');
      const source = principal.keyId.startsWith('env:') ? 'environment' : 'stored';
      return { id: principal.keyId, name: principal.name, scope: principal.scope, source };
    },

    async list(includeRevoked = false): Promise<AdminKeyView[]> {
      return (await store.list(includeRevoked)).map(view);
    },

    async countLive(): Promise<number> {
      return (await store.countLive()) + deps.envKeys.length;
    },

    async revoke(ctx: AuditContext, idOrName: string): Promise<AdminKeyView> {
      const row = await resolveLive(idOrName);
      const at = now();
      if (!(await store.revoke(row.id, at))) throw errorFrom(adminKeyErrors, 'admin_key_not_found');
      await audit.record(ctx, {
        action: 'admin_key.revoked',
        resourceType: 'admin_key',
        resourceId: row.id,
        details: { name: row.name, scope: row.scope },
      });
      return view({ ...row, revoked_at: at });
    },
  };
}

export type AdminKeysService = ReturnType<typeof createAdminKeysService>;
