import type { SecretBackend } from '../secrets/secret-backend.ts';

/** A provider as far as its credentials' location is concerned. */
export interface ProviderRef {
  readonly id: string;
  readonly name: string;
}

/**
 * Where a provider's credentials live in the secret backend.
 *
 * - `internal` (the default, unchanged): the client secret at `providers/<id>/client_secret`;
 *   the client id stays in the provider row.
 * - external backends (Vault/OpenBao, AWS, GCP): `client_id` and `client_secret` at
 *   `<provider name>/client_id` and `<provider name>/client_secret` under the backend's prefix
 *   (`VAULT_PATH_PREFIX`, `AWS_SECRET_PREFIX`, `GCP_SECRET_PREFIX`), so operators find them by
 *   name; the provider row keeps only metadata. Renaming copies them to the new name before the
 *   rename commits and removes the old paths after; deleting removes them (both under the name
 *   lock, so a provider created with the same name never loses its own).
 *
 * External reads that find a value are cached in memory for `cacheMs` (30 s: a flow does not
 * cost a secret-manager call); misses are not cached. Every write through this object
 * invalidates its entry. Another replica's change is seen after the TTL.
 */
export interface ProviderCredentials {
  readonly external: boolean;
  getSecret(p: ProviderRef): Promise<string | undefined>;
  putSecret(p: ProviderRef, secret: string): Promise<void>;
  deleteSecret(p: ProviderRef): Promise<void>;
  /** External backends only; undefined for `internal` (the id is in the row). */
  getClientId(p: ProviderRef): Promise<string | undefined>;
  putClientId(p: ProviderRef, clientId: string): Promise<void>;
  deleteClientId(p: ProviderRef): Promise<void>;
  /**
   * Before a rename commits: copies what exists under the old name to the new one, each copy read
   * back. The old paths stay until `dropName(from)` once the rename has committed.
   */
  copy(from: ProviderRef, to: ProviderRef): Promise<void>;
  /** Removes the name-keyed paths of `p` (external layouts only; `internal` paths are per id). */
  dropName(p: ProviderRef): Promise<void>;
  /** Removes the id-keyed path of `p` (`internal` layout only). */
  dropId(p: ProviderRef): Promise<void>;
}

export function createProviderCredentials(
  secrets: SecretBackend,
  options: { cacheMs?: number; now?: () => number; fallback?: SecretBackend | undefined } = {},
): ProviderCredentials {
  // During a migration (SECRET_BACKEND_FALLBACK): reads that find nothing ask the old backend,
  // in its own layout; writes go to the new one only; deletes and renames apply to both.
  const fallback =
    options.fallback === undefined
      ? undefined
      : createProviderCredentials(options.fallback, {
          ...(options.cacheMs === undefined ? {} : { cacheMs: options.cacheMs }),
          ...(options.now === undefined ? {} : { now: options.now }),
        });
  const external = secrets.kind !== 'internal';
  // Only external reads are cached: `internal` reads its own database, as it always has.
  const cacheMs = external ? (options.cacheMs ?? 30_000) : 0;
  const now = options.now ?? Date.now;
  const cache = new Map<string, { value: string | undefined; until: number }>();
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();

  const secretPath = (p: ProviderRef) =>
    external ? `${p.name}/client_secret` : `providers/${p.id}/client_secret`;
  const idPath = (p: ProviderRef) => `${p.name}/client_id`;

  // Cached per provider id as well as path: a provider deleted and created again under the same
  // name (a new id) must not be served the old one's credentials by a replica that read them.
  const keyOf = (p: ProviderRef, path: string) => `${p.id} ${path}`;

  async function read(p: ProviderRef, path: string): Promise<string | undefined> {
    const key = keyOf(p, path);
    const hit = cache.get(key);
    if (hit && hit.until > now()) return hit.value;
    const stored = await secrets.get(path);
    const value = stored === null ? undefined : decoder.decode(stored.value);
    // Only values are cached: a miss is asked again (a credential written by another replica, or
    // a backend that answered "absent" by mistake, must not be hidden for the TTL).
    if (cacheMs > 0 && value !== undefined) cache.set(key, { value, until: now() + cacheMs });
    return value;
  }
  async function put(p: ProviderRef, path: string, value: string): Promise<void> {
    cache.delete(keyOf(p, path));
    await secrets.put(path, encoder.encode(value));
  }
  async function remove(p: ProviderRef, path: string): Promise<void> {
    cache.delete(keyOf(p, path));
    await secrets.delete(path);
  }

  return {
    external,
    async getSecret(p) {
      return (await read(p, secretPath(p))) ?? fallback?.getSecret(p);
    },
    putSecret: (p, secret) => put(p, secretPath(p), secret),
    async deleteSecret(p) {
      await remove(p, secretPath(p));
      await fallback?.deleteSecret(p);
    },
    async getClientId(p) {
      return (external ? await read(p, idPath(p)) : undefined) ?? fallback?.getClientId(p);
    },
    putClientId: async (p, clientId) => {
      if (external) await put(p, idPath(p), clientId);
    },
    deleteClientId: async (p) => {
      if (external) await remove(p, idPath(p));
      await fallback?.deleteClientId(p);
    },
    async copy(from, to) {
      await fallback?.copy(from, to);
      if (!external || from.name === to.name) return;
      for (const [src, dst] of [
        [idPath(from), idPath(to)],
        [secretPath(from), secretPath(to)],
      ] as const) {
        const stored = await secrets.get(src);
        if (stored === null) continue;
        cache.delete(keyOf(to, dst));
        await secrets.put(dst, stored.value);
        // Verified before the old copy goes: a failed write must not lose the credential.
        const copy = await secrets.get(dst);
        if (copy === null || Buffer.compare(Buffer.from(copy.value), Buffer.from(stored.value)) !== 0)
          throw new Error(`provider credential copy to ${dst} did not read back`);
      }
    },
    async dropName(p) {
      await fallback?.dropName(p);
      if (!external) return;
      // Both go or neither: a failure rolls the caller's delete back, and the provider must then
      // still hold its pair. The secret goes first and is put back if the id cannot go.
      const secret = await secrets.get(secretPath(p));
      await remove(p, secretPath(p));
      try {
        await remove(p, idPath(p));
      } catch (error) {
        if (secret !== null) await secrets.put(secretPath(p), secret.value).catch(() => {});
        throw error;
      }
    },
    async dropId(p) {
      await fallback?.dropId(p);
      if (!external) await remove(p, secretPath(p));
    },
  };
}
