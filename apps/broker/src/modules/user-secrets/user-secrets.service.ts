import { randomUUID } from 'node:crypto';
import { keyIdOfCiphertext, openText, sealText } from '../../crypto/envelope.ts';
import type { KeyRing } from '../../crypto/keyring.ts';
import { keysetPage } from '../../db/page.ts';
import type { UserSecretsTable } from '../../db/schema.ts';
import { commonError } from '../../errors/common.errors.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import type { SecretBackend } from '../secrets/secret-backend.ts';
import { userSecretErrors } from './user-secrets.errors.ts';
import { type SecretOwner, type UserSecretsStore, versionPath } from './user-secrets.store.ts';

/** Whose secrets a request reaches: one user, one zone. Everything else answers 404. */
export type { SecretOwner };

/** The longest page of secrets or versions, and the default one. */
export const MAX_PAGE = 1000;
/** Where a page starts (`next_cursor` of the one before) and how long it is. */
export interface Page {
  cursor?: string | undefined;
  limit?: number | undefined;
}

export interface SecretMetadata {
  name: string;
  zone: string;
  description: string;
  current_version: number;
  enabled: boolean;
  deleted: boolean;
  created_at: string;
  updated_at: string;
}

/**
 * Whether an agent holds an explicit grant for one secret name of one user and zone:
 * `<user>/<zone>/<name>`, or the same with `*` as the user for every user. Shared by the REST
 * routes and MCP.
 */
export function agentHoldsSecretGrant(
  allowedSecrets: readonly string[],
  owner: SecretOwner,
  name: string,
): boolean {
  return (
    allowedSecrets.includes(`${owner.userId}/${owner.zone}/${name}`) ||
    allowedSecrets.includes(`*/${owner.zone}/${name}`)
  );
}

/** A secret's name, its zone, a user id and a value, as every way in (REST, CLI) takes them. */
export const SECRET_NAME = /^[A-Za-z0-9_.-]{1,128}$/;
export const SECRET_ZONE = /^[a-z0-9_-]{1,64}$/;
export const MAX_USER_ID = 200;
export const MAX_SECRET_VALUE = 65_536;

export const REFERENCE_PREFIX = 'nexus-secret:';
/** A reference names a secret as SECRET_NAME does. */
const REFERENCE = /^nexus-secret:([A-Za-z0-9_.-]{1,128})$/;
const MAX_RESOLVE_DEPTH = 16;
const MAX_RESOLVE_NODES = 10_000;

export const versionBinding = (secretId: string, version: number) => ({
  table: 'user_secret_versions',
  id: `${secretId}:${version}`,
  field: 'value',
});
const iso = (ms: number) => new Date(ms).toISOString();

/**
 * User secrets, scoped to (user, zone, name). Every write is a new version; values go to the
 * configured secret backend sealed with the user-secrets key ring (its own purpose: the OAuth
 * token keys never touch them), bound to their version row. Reads are audited as `key_accessed`;
 * no value ever reaches a list, a log line or an audit row.
 */
/** The names an object refers to with `nexus-secret:NAME` strings, anywhere in it (bounded). */
export function referencedNames(input: unknown): Set<string> {
  const names = new Set<string>();
  let nodes = 0;
  const collect = (value: unknown, depth: number): void => {
    if (++nodes > MAX_RESOLVE_NODES || depth > MAX_RESOLVE_DEPTH)
      throw errorFrom(userSecretErrors, 'unresolved_secrets', {
        message: `The object is too large or too deep (at most ${MAX_RESOLVE_NODES} values, ${MAX_RESOLVE_DEPTH} levels).`,
      });
    if (typeof value === 'string') {
      const match = REFERENCE.exec(value);
      if (match) names.add(match[1]!);
    } else if (Array.isArray(value)) for (const v of value) collect(v, depth + 1);
    else if (value !== null && typeof value === 'object')
      for (const v of Object.values(value)) collect(v, depth + 1);
  };
  collect(input, 0);
  return names;
}

export function createUserSecrets(deps: {
  store: UserSecretsStore;
  backend: SecretBackend;
  ring: KeyRing | undefined;
  audit: Pick<AuditService, 'record'>;
  now?: () => number;
}) {
  const { store } = deps;
  const now = deps.now ?? Date.now;

  /**
   * The user-secrets ring, or `user_secrets_not_configured`. Every operation asks for it first,
   * also those that decrypt nothing: with the feature off, each route says how to turn it on.
   */
  function ring(): KeyRing {
    if (deps.ring === undefined) throw errorFrom(userSecretErrors, 'user_secrets_not_configured');
    return deps.ring;
  }

  async function live(owner: SecretOwner, name: string): Promise<UserSecretsTable> {
    const row = await store.find(owner, name);
    if (row === undefined || row.deleted_at !== null)
      throw errorFrom(userSecretErrors, 'user_secret_not_found');
    return row;
  }

  const metadata = (row: UserSecretsTable): SecretMetadata => ({
    name: row.name,
    zone: row.zone,
    description: row.description,
    current_version: row.current_version,
    enabled: row.disabled_at === null,
    deleted: row.deleted_at !== null,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
  });

  const record = (
    ctx: AuditContext,
    action: string,
    row: UserSecretsTable,
    details: Record<string, unknown> = {},
  ) =>
    deps.audit.record(ctx, {
      action,
      resourceType: 'user_secret',
      resourceId: row.id,
      details: { user_id: row.user_id, zone: row.zone, name: row.name, ...details },
    });

  /** Opens a version's stored value (null: not stored) and audits the read. */
  async function opened(
    ctx: AuditContext,
    row: UserSecretsTable,
    version: number,
    stored: { value: Uint8Array } | null,
  ): Promise<string> {
    if (stored === null) throw errorFrom(userSecretErrors, 'user_secret_not_found');
    const value = openText(ring(), stored.value, versionBinding(row.id, version));
    await record(ctx, 'key_accessed', row, { version });
    return value;
  }

  const readValue = async (ctx: AuditContext, row: UserSecretsTable, version: number) =>
    opened(ctx, row, version, await deps.backend.get(versionPath(row.id, version)));

  /**
   * The current value and its version. A `put` claims its version number before it stores the
   * value: until it has (or for good, if its process died in between), the current version is
   * the newest one whose value was stored, so a read during a rotation never finds nothing.
   */
  async function currentValue(ctx: AuditContext, row: UserSecretsTable) {
    let version = row.current_version;
    let stored = await deps.backend.get(versionPath(row.id, version));
    const previous = stored === null ? await store.newestStored(row.id, version) : undefined;
    if (previous !== undefined) {
      version = previous;
      stored = await deps.backend.get(versionPath(row.id, version));
    }
    return { version, value: await opened(ctx, row, version, stored) };
  }

  return {
    /** Creates the secret, or adds a version to it (the new version becomes current). */
    async put(
      ctx: AuditContext,
      owner: SecretOwner,
      input: { name: string; value: string; description?: string | undefined },
    ): Promise<SecretMetadata & { version: number }> {
      const keys = ring();
      const t = now();
      let row = await store.find(owner, input.name);
      if (row?.deleted_at != null) throw errorFrom(userSecretErrors, 'user_secret_deleted');
      const created = row === undefined;
      if (row === undefined) {
        row = {
          id: randomUUID(),
          user_id: owner.userId,
          zone: owner.zone,
          name: input.name,
          description: input.description ?? '',
          current_version: 0,
          disabled_at: null,
          deleted_at: null,
          created_at: t,
          updated_at: t,
        };
        try {
          await store.insert(row);
        } catch (cause) {
          // Created concurrently: add a version to that one instead. Without such a secret the
          // insert failed for its own reason, which is this call's answer (not a 404).
          row = await live(owner, input.name).catch(() => {
            throw cause;
          });
        }
      }
      // The version number is claimed by a conditional update, so two writers never share one.
      let version = 0;
      for (let attempt = 0; attempt < 5 && version === 0; attempt++) {
        const current = await live(owner, input.name);
        const claimed = await store.claimVersion(current.id, current.current_version, {
          updated_at: t,
          ...(input.description === undefined ? {} : { description: input.description }),
        });
        if (claimed) {
          version = current.current_version + 1;
          row = { ...current, current_version: version, updated_at: t };
        }
      }
      if (version === 0)
        throw commonError('conflict', { message: 'Too many concurrent writes to this secret; retry.' });
      try {
        await deps.backend.put(
          versionPath(row.id, version),
          sealText(keys, input.value, versionBinding(row.id, version)),
        );
      } catch (error) {
        // Give the version number back, so the current version is never one without a value.
        await store.releaseVersion(row.id, version);
        throw error;
      }
      await store.insertVersion({ secret_id: row.id, version, created_at: t, created_by: ctx.actor });
      await record(ctx, created ? 'secret.created' : 'secret.updated', row, { version });
      return { ...metadata(row), version };
    },

    /** A page by name after `cursor` (a name); `next_cursor` names where the next one starts. */
    async list(owner: SecretOwner, includeDeleted: boolean, page: Page = {}) {
      ring();
      const limit = page.limit ?? MAX_PAGE;
      const rows = await store.list(owner, includeDeleted, { after: page.cursor, limit: limit + 1 });
      const shown = keysetPage(rows, limit, (last) => last.name);
      return { secrets: shown.page.map(metadata), next_cursor: shown.next_cursor };
    },

    /** The value (current or a given version); audited as `key_accessed`. */
    async read(ctx: AuditContext, owner: SecretOwner, name: string, version?: number) {
      ring();
      const row = await live(owner, name);
      if (row.disabled_at !== null) throw errorFrom(userSecretErrors, 'user_secret_disabled');
      if (version === undefined) return { name: row.name, zone: row.zone, ...(await currentValue(ctx, row)) };
      if (version < 1 || version > row.current_version)
        throw errorFrom(userSecretErrors, 'user_secret_not_found');
      return { name: row.name, zone: row.zone, version, value: await readValue(ctx, row, version) };
    },

    /** A page of versions, newest first, below `cursor` (a version number). */
    async versions(owner: SecretOwner, name: string, page: Page = {}) {
      ring();
      const row = await live(owner, name);
      const limit = page.limit ?? MAX_PAGE;
      const before = page.cursor === undefined ? undefined : Number(page.cursor);
      const rows = await store.versions(row.id, { before, limit: limit + 1 });
      const shown = keysetPage(rows, limit, (last) => String(last.version));
      return {
        versions: shown.page.map((r) => ({
          version: r.version,
          created_at: iso(r.created_at),
          created_by: r.created_by,
        })),
        next_cursor: shown.next_cursor,
      };
    },

    async remove(ctx: AuditContext, owner: SecretOwner, name: string): Promise<void> {
      ring();
      const row = await live(owner, name);
      await store.update(row.id, { deleted_at: now(), updated_at: now() });
      await record(ctx, 'secret.deleted', row);
    },

    async restore(ctx: AuditContext, owner: SecretOwner, name: string): Promise<SecretMetadata> {
      ring();
      const row = await store.find(owner, name);
      if (row === undefined || row.deleted_at === null)
        throw errorFrom(userSecretErrors, 'user_secret_not_found');
      const t = now();
      await store.update(row.id, { deleted_at: null, updated_at: t });
      await record(ctx, 'secret.restored', row);
      return metadata({ ...row, deleted_at: null, updated_at: t });
    },

    async setEnabled(
      ctx: AuditContext,
      owner: SecretOwner,
      name: string,
      enabled: boolean,
    ): Promise<SecretMetadata> {
      ring();
      const row = await live(owner, name);
      const t = now();
      const disabled_at = enabled ? null : (row.disabled_at ?? t);
      await store.update(row.id, { disabled_at, updated_at: t });
      await record(ctx, enabled ? 'secret.enabled' : 'secret.disabled', row);
      return metadata({ ...row, disabled_at, updated_at: t });
    },

    /**
     * Re-seals every stored version under the user-secrets ring's primary key (after a rotation of
     * that key; the OAuth token keys are not involved). Resumable: versions already under the
     * primary are skipped. Versions that cannot be opened are reported, never overwritten. Stops
     * before the next version once `signal` is aborted (`interrupted`: run it again to finish).
     */
    async rewrap(onProgress?: (done: number, total: number) => void, signal?: AbortSignal) {
      const keys = ring();
      const rows = await store.allVersions();
      let rewrapped = 0;
      let alreadyCurrent = 0;
      const failed: { secret_id: string; version: number; reason: string }[] = [];
      let interrupted = false;
      for (const [i, row] of rows.entries()) {
        if (signal?.aborted) {
          interrupted = true;
          break;
        }
        const path = versionPath(row.secret_id, row.version);
        const binding = versionBinding(row.secret_id, row.version);
        try {
          const stored = await deps.backend.get(path);
          if (stored === null) throw new Error('missing from the secret backend');
          if (keyIdOfCiphertext(stored.value) === keys.primaryKid) alreadyCurrent++;
          else {
            await deps.backend.put(path, sealText(keys, openText(keys, stored.value, binding), binding));
            rewrapped++;
          }
        } catch (error) {
          failed.push({ ...row, reason: (error as Error).message.slice(0, 200) });
        }
        onProgress?.(i + 1, rows.length);
      }
      return { scanned: rows.length, rewrapped, alreadyCurrent, failed, interrupted };
    },

    /**
     * Replaces every `nexus-secret:NAME` string in a config object (strings, arrays, nested
     * objects) by the secret's current value, reading each name once and auditing each read.
     * Missing, deleted or disabled names are unresolved: an error listing them, or (when asked)
     * left in place and reported.
     */
    async resolve(ctx: AuditContext, owner: SecretOwner, input: unknown, leaveUnresolved: boolean) {
      ring();
      const names = referencedNames(input);
      const values = new Map<string, string>();
      const unresolved: { name: string; reason: 'not_found' | 'disabled' }[] = [];
      for (const name of names) {
        const row = await store.find(owner, name);
        if (row === undefined || row.deleted_at !== null) unresolved.push({ name, reason: 'not_found' });
        else if (row.disabled_at !== null) unresolved.push({ name, reason: 'disabled' });
        else values.set(name, (await currentValue(ctx, row)).value);
      }
      if (unresolved.length > 0 && !leaveUnresolved)
        throw errorFrom(userSecretErrors, 'unresolved_secrets', { details: { unresolved } });
      const replace = (value: unknown): unknown => {
        if (typeof value === 'string') {
          const match = REFERENCE.exec(value);
          return match && values.has(match[1]!) ? values.get(match[1]!) : value;
        }
        if (Array.isArray(value)) return value.map(replace);
        if (value !== null && typeof value === 'object')
          return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, replace(v)]));
        return value;
      };
      return { resolved: replace(input), unresolved };
    },
  };
}

export type UserSecrets = ReturnType<typeof createUserSecrets>;
