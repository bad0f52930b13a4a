/**
 * The write path: create, replace, patch and delete. Each write is checked (provider-checks.ts)
 * and guarded (provider-destinations.ts) before anything changes, claims its name under the
 * provider-name lock, keeps the row and the secret backend in step (a failure puts the row back),
 * and is audited once.
 */
import { randomUUID } from 'node:crypto';
import type { ProvidersTable } from '../../db/schema.ts';
import { commonError } from '../../errors/common.errors.ts';
import { checkIfMatch } from '../../errors/if-match.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import type { ProviderWarning } from './id-token-trust.ts';
import type { ProviderChecks } from './provider-checks.ts';
import type { ProviderCredentials, ProviderRef } from './provider-credentials.ts';
import type { createDestinationGuard } from './provider-destinations.ts';
import type { ProviderReads } from './provider-reads.ts';
import {
  changedFields,
  normalize,
  parseRecord,
  type RecordCodec,
  refOf,
  type StoredRecord,
} from './provider-record.ts';
import { providerErrors } from './providers.errors.ts';
import type { ProfileInput, ProfilePatch, ProviderView, StoredProfile } from './providers.schemas.ts';
import type { LockedProvidersStore, ProvidersStore } from './providers.store.ts';

export function createProviderWrites(deps: {
  store: ProvidersStore;
  creds: ProviderCredentials;
  codec: RecordCodec;
  reads: Pick<ProviderReads, 'mustFind' | 'resolveRow' | 'view'>;
  checks: ProviderChecks;
  guardDestinations: ReturnType<typeof createDestinationGuard>;
  audit: Pick<AuditService, 'record'>;
  now: () => number;
}) {
  const { store, creds, codec, reads, checks, guardDestinations, audit, now } = deps;

  async function assertNameFree(s: LockedProvidersStore, name: string, exceptId?: string): Promise<void> {
    const existing = await s.findLiveByName(name);
    if ((existing && existing.id !== exceptId) || (await s.aliasExists(name))) {
      throw errorFrom(providerErrors, 'provider_name_taken', { details: { name } });
    }
  }

  /** Soft-deletes a provider row; its name, aliases and credentials are released. */
  async function removeRow(ctx: AuditContext, row: ProvidersTable, ifMatch?: string): Promise<void> {
    checkIfMatch(ifMatch, row.version);
    const record = parseRecord(row);
    // Name-keyed (external) credentials go before the name is released, in the same transaction:
    // a provider created with this name right after must not lose its own. A backend failure
    // rolls the delete back. Id-keyed (`internal`) ones cannot collide and go afterwards.
    const deleted = await store.withNameLock(async (s) => {
      if (!(await s.softDelete(row.id, row.version, now()))) return false;
      await creds.dropName(refOf(row));
      return true;
    });
    if (!deleted) throw errorFrom(providerErrors, 'provider_not_found');
    if (record.has_client_secret) await creds.dropId(refOf(row));
    await audit.record(ctx, {
      action: 'provider.deleted',
      resourceType: 'provider',
      resourceId: row.id,
      details: { name: row.name },
    });
  }

  /** Writes a new profile over `row`; `secret` undefined keeps, null removes, a string replaces. */
  async function write(
    ctx: AuditContext,
    row: ProvidersTable,
    written: StoredProfile,
    secret: string | null | undefined,
    ifMatch: string | undefined,
  ): Promise<ProviderView> {
    checkIfMatch(ifMatch, row.version);
    const before = await codec.hydrate(row);
    const folded = checks.fold(written, before);
    const profile = folded.profile;
    // Switching to a static type drops the client secret: it has no use there.
    // So does a switch between a shared secret and private_key_jwt: the stored value is the wrong kind.
    const sameKind =
      (before.auth_header === 'private_key_jwt') === (profile.auth_header === 'private_key_jwt');
    const keepSecret =
      secret === undefined && before.has_client_secret && profile.auth_type === 'oauth2' && sameKind;
    const hasSecret = typeof secret === 'string' || keepSecret;
    // A profile that is not valid says so first; discovery is fetched only once the change may go.
    checks.validate(profile, hasSecret, secret ?? undefined, folded.problems);
    const destination = await guardDestinations(row, before, profile, secret, keepSecret);
    await checks.discover(profile, before);
    const record: StoredRecord = { ...profile, has_client_secret: hasSecret };
    const stored = JSON.stringify(codec.rowRecord(record));
    const t = now();
    const set = {
      name: profile.name,
      auth_type: profile.auth_type,
      profile: stored,
      updated_at: t,
    };
    const oldRef = refOf(row);
    const ref: ProviderRef = { id: row.id, name: profile.name };
    const renamed = creds.external && profile.name !== row.name;
    // The versioned update decides who wins a race; only the winner touches the secret afterwards.
    // A rename copies the name-keyed credentials to the new name while the name lock is held and
    // before the row names it, so the row never points at paths that do not hold them.
    const updated =
      profile.name === row.name
        ? await store.update(row.id, row.version, set)
        : await store.withNameLock(async (s) => {
            await assertNameFree(s, profile.name, row.id);
            if (renamed) await creds.copy(oldRef, ref);
            const ok = await s.update(row.id, row.version, set);
            if (!ok && renamed) await creds.dropName(ref).catch(() => {});
            return ok;
          });
    if (!updated)
      throw commonError('version_conflict', {
        message: 'The provider changed while it was being updated; fetch it again and retry.',
      });
    // Set once the client id in the backend was changed: undoes that if the secret write fails.
    let restoreId: (() => Promise<void>) | undefined;
    try {
      if (creds.external) {
        // A row written under `internal` still holds the id itself: the backend gets it now, since
        // the row written below will not.
        const idInBackend = parseRecord(row).has_client_id === true;
        const previous = idInBackend ? before.client_id : undefined;
        const restore = () =>
          previous === undefined ? creds.deleteClientId(ref) : creds.putClientId(ref, previous);
        if (profile.client_id === undefined) {
          if (before.client_id !== undefined) {
            restoreId = restore;
            await creds.deleteClientId(ref);
          }
        } else if (profile.client_id !== before.client_id || !idInBackend) {
          restoreId = restore;
          await creds.putClientId(ref, profile.client_id);
        }
      }
      if (typeof secret === 'string') await creds.putSecret(ref, secret);
    } catch (cause) {
      // The profile goes back below; so does the client id it names (at a renamed provider's new
      // paths, which are dropped anyway, there is nothing to restore), or the id would not match
      // the secret and every refresh would answer invalid_client.
      if (restoreId !== undefined && !renamed) await restoreId().catch(() => {});
      // Put the profile (and its name) back so it never describes a secret that was not stored;
      // after a rename the old paths still hold the credentials, and the new ones go.
      await store
        .withNameLock(async (s) => {
          const ok = await s.update(row.id, row.version + 1, {
            ...set,
            profile: row.profile,
            name: row.name,
            auth_type: row.auth_type,
          });
          if (ok && renamed) await creds.dropName(ref);
        })
        .catch(() => {});
      throw cause;
    }
    if (renamed) {
      // The rename has committed: the old paths go, unless a provider has taken the old name since
      // (its own credentials are there then).
      await store
        .withNameLock(async (s) => {
          if ((await s.findLiveByName(row.name)) === undefined) await creds.dropName(oldRef);
        })
        .catch(() => {});
    }
    if (!hasSecret && before.has_client_secret) await creds.deleteSecret(ref);
    const changed = changedFields(
      before,
      record,
      typeof secret === 'string' || (before.has_client_secret && !hasSecret),
    );
    // A change of where secrets go is its own action, so that it can be watched for on its own.
    await audit.record(ctx, {
      action: destination === undefined ? 'provider.updated' : 'provider.destination_changed',
      resourceType: 'provider',
      resourceId: row.id,
      details:
        destination === undefined
          ? { name: profile.name, changed }
          : { name: profile.name, changed, destination_fields: destination.fields, basis: destination.basis },
    });
    return reads.view({
      ...row,
      name: profile.name,
      auth_type: profile.auth_type,
      profile: stored,
      version: row.version + 1,
      updated_at: t,
    });
  }

  return {
    /**
     * `options.id`: an id to keep when it is free (`nexus import original` keeps the original's
     * provider ids); the answer says which id the provider got.
     */
    async create(
      ctx: AuditContext,
      input: ProfileInput,
      options: { id?: string } = {},
    ): Promise<{ id: string; warnings?: ProviderWarning[] }> {
      const normalized = normalize(input);
      const { secret } = normalized;
      const { profile, problems } = checks.fold(normalized.profile);
      await checks.check(profile, secret !== undefined, undefined, secret, problems);
      // A kept id is used only when no row (a deleted one included) has it.
      const id = options.id !== undefined && !(await store.idTaken(options.id)) ? options.id : randomUUID();
      const t = now();
      const ref: ProviderRef = { id, name: profile.name };
      // Internal paths are per id: the secret goes first, so a row never lacks its secret.
      if (secret !== undefined && !creds.external) await creds.putSecret(ref, secret);
      const record: StoredRecord = { ...profile, has_client_secret: secret !== undefined };
      try {
        await store.withNameLock(async (s) => {
          await assertNameFree(s, profile.name);
          await s.insert({
            id,
            name: profile.name,
            auth_type: profile.auth_type,
            profile: JSON.stringify(codec.rowRecord(record)),
            version: 1,
            created_at: t,
            updated_at: t,
            deleted_at: null,
          });
        });
      } catch (cause) {
        if (secret !== undefined && !creds.external) await creds.deleteSecret(ref).catch(() => {});
        throw cause;
      }
      if (creds.external) {
        // External paths are per name: written only once the name is ours, so a refused
        // duplicate can never overwrite another provider's credentials.
        try {
          if (profile.client_id !== undefined) await creds.putClientId(ref, profile.client_id);
          if (secret !== undefined) await creds.putSecret(ref, secret);
        } catch (cause) {
          // The paths go while the name is still claimed: a provider created with the same name
          // right after must not lose its own.
          await store
            .withNameLock(async (s) => {
              if (await s.softDelete(id, 1, now())) await creds.dropName(ref);
            })
            .catch(() => {});
          throw cause;
        }
      }
      await audit.record(ctx, {
        action: 'provider.created',
        resourceType: 'provider',
        resourceId: id,
        details: { name: profile.name, auth_type: profile.auth_type },
      });
      return { id, ...(await checks.warningsFor(profile)) };
    },

    async replace(
      ctx: AuditContext,
      id: string,
      input: ProfileInput,
      ifMatch?: string,
    ): Promise<ProviderView & { warnings?: ProviderWarning[] }> {
      const row = await reads.mustFind(id);
      const { profile, secret } = normalize(input);
      const view = await write(ctx, row, profile, secret, ifMatch);
      return { ...view, ...(await checks.warningsFor(profile)) };
    },

    async patch(
      ctx: AuditContext,
      id: string,
      patch: ProfilePatch,
      ifMatch?: string,
    ): Promise<ProviderView & { warnings?: ProviderWarning[] }> {
      const row = await reads.mustFind(id);
      const { has_client_secret: _, ...current } = await codec.hydrate(row);
      const merged: Record<string, unknown> = { ...current };
      for (const [key, value] of Object.entries(patch)) {
        if (key === 'client_secret' || value === undefined) continue;
        if (value === null || value === '') delete merged[key];
        else merged[key] = value;
      }
      const { profile } = normalize({
        auth_header: 'client_secret_post',
        enable_discovery: false,
        scopes: [],
        params: {},
        ...merged,
      } as unknown as ProfileInput);
      const secret = patch.client_secret === '' ? null : patch.client_secret;
      const view = await write(ctx, row, profile, secret, ifMatch);
      return { ...view, ...(await checks.warningsFor(profile)) };
    },

    async remove(ctx: AuditContext, id: string, ifMatch?: string): Promise<void> {
      await removeRow(ctx, await reads.mustFind(id), ifMatch);
    },

    /** `DELETE /providers/by-name/{name}`: the provider `resolve` finds by that name, deleted. Its id. */
    async removeByName(ctx: AuditContext, name: string, ifMatch?: string): Promise<string> {
      const row = await reads.resolveRow(name);
      await removeRow(ctx, row, ifMatch);
      return row.id;
    },
  };
}
