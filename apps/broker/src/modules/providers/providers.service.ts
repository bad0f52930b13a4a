import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Principal } from '../../auth/principal.ts';
import type { ProvidersTable } from '../../db/schema.ts';
import { commonError } from '../../errors/common.errors.ts';
import { checkIfMatch } from '../../errors/if-match.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import { principalMaySeeProvider } from '../agents/grants.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import type { SecretBackend } from '../secrets/secret-backend.ts';
import { secretError } from '../secrets/secrets.errors.ts';
import { parseClientKey } from './client-key.ts';
import type { Discovery } from './discovery.ts';
import { openidWarning, type ProviderWarning } from './id-token-trust.ts';
import { createProviderCredentials, type ProviderRef } from './provider-credentials.ts';
import { foldStrategySettings } from './provider-params.ts';
import { providerErrors } from './providers.errors.ts';
import type {
  AuthType,
  ProfileInput,
  ProfilePatch,
  ProviderView,
  StoredProfile,
} from './providers.schemas.ts';
import type { LockedProvidersStore, ProvidersStore } from './providers.store.ts';
import { type Problem, validateProfile } from './providers.validate.ts';

/**
 * What is stored in `providers.profile`: the profile plus whether a client secret exists. With an
 * external secret backend the client id is not in the row: `has_client_id` says one is stored in
 * the backend (see provider-credentials.ts).
 */
interface StoredRecord extends StoredProfile {
  has_client_secret: boolean;
  has_client_id?: boolean;
}

type Metadata = Record<
  string,
  Record<
    string,
    {
      id: string;
      api_base_url: string;
      user_info_endpoint: string;
      scopes: string[];
      description: string;
      category: string;
    }
  >
>;

const OPTIONAL_TEXT = [
  'client_id',
  'auth_url',
  'token_url',
  'issuer',
  'api_base_url',
  'user_info_endpoint',
  'description',
  'category',
] as const;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The internal backend's path of a client secret (external backends use the provider name). */
export const clientSecretPath = (providerId: string) => `providers/${providerId}/client_secret`;

/** Splits input into the stored profile and the secret; "" and null mean "not set". */
function normalize(input: ProfileInput): { profile: StoredProfile; secret: string | undefined } {
  const profile: StoredProfile = {
    name: input.name,
    auth_type: input.auth_type,
    auth_header: input.auth_header,
    enable_discovery: input.enable_discovery,
    scopes: [...new Set(input.scopes)],
    params: input.params,
  };
  for (const field of OPTIONAL_TEXT) {
    const value = input[field];
    if (typeof value === 'string' && value !== '') profile[field] = value;
  }
  const secret =
    typeof input.client_secret === 'string' && input.client_secret !== '' ? input.client_secret : undefined;
  return { profile, secret };
}

function parseRecord(row: Pick<ProvidersTable, 'profile'>): StoredRecord {
  return JSON.parse(row.profile) as StoredRecord;
}

/**
 * Where a provider sends what it stores. The client secret, authorization codes and refresh tokens
 * go to the token endpoint (`token_url`, or learnt from the issuer's discovery document), tokens to
 * the revocation endpoint (`params.revocation_endpoint`, or discovered), the client credential in
 * the form `auth_header` says (a `private_key_jwt` assertion's audience is the issuer), and
 * connection credentials to `api_base_url` through the credential proxy.
 */
const DESTINATION_FIELDS = [
  'token_url',
  'issuer',
  'enable_discovery',
  'auth_header',
  'api_base_url',
] as const;

/** The destination fields (DESTINATION_FIELDS and `params.revocation_endpoint`) a write changes. */
function destinationChanges(before: StoredProfile, after: StoredProfile): string[] {
  const differs = (a: unknown, b: unknown) => JSON.stringify(a ?? null) !== JSON.stringify(b ?? null);
  const fields: string[] = DESTINATION_FIELDS.filter((f) => differs(before[f], after[f]));
  if (differs(before.params.revocation_endpoint, after.params.revocation_endpoint))
    fields.push('params.revocation_endpoint');
  return fields;
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/** Why a change of destination was accepted, for the audit event (never the secret itself). */
type DestinationBasis = 'current_client_secret' | 'no_stored_credentials';

function changedFields(before: StoredRecord, after: StoredRecord, secretChanged: boolean): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  keys.delete('has_client_secret');
  const changed = [...keys].filter(
    (k) => JSON.stringify(before[k as keyof StoredRecord]) !== JSON.stringify(after[k as keyof StoredRecord]),
  );
  if (secretChanged) changed.push('client_secret');
  return changed.sort();
}

export function createProvidersService(deps: {
  store: ProvidersStore;
  secrets: SecretBackend;
  /** The old backend while migrating (SECRET_BACKEND_FALLBACK): read when `secrets` has no copy. */
  secretsFallback?: SecretBackend | undefined;
  discovery: Pick<Discovery, 'refresh'>;
  audit: Pick<AuditService, 'record'>;
  allowLoopbackHttp: boolean;
  /** `NEXUS_EGRESS_ALLOWED_CIDRS`: literal addresses inside these ranges may be registered. */
  egressAllowedCidrs?: readonly string[];
  now?: () => number;
}) {
  const { store, discovery, audit } = deps;
  const now = deps.now ?? Date.now;
  const creds = createProviderCredentials(deps.secrets, { now, fallback: deps.secretsFallback });
  const refOf = (row: Pick<ProvidersTable, 'id' | 'name'>): ProviderRef => ({ id: row.id, name: row.name });

  /** The row's record as the row stores it, with the client id filled in from an external backend. */
  async function hydrate(row: ProvidersTable): Promise<StoredRecord> {
    const { has_client_id, ...record } = parseRecord(row);
    if (!has_client_id) return record;
    const clientId = await creds.getClientId(refOf(row));
    return clientId === undefined ? record : { ...record, client_id: clientId };
  }

  /** What goes into the row: with an external backend, everything but the client id. */
  function rowRecord(record: StoredRecord): StoredRecord {
    if (!creds.external || record.client_id === undefined) return record;
    const { client_id: _, ...rest } = record;
    return { ...rest, has_client_id: true };
  }

  async function mustFind(id: string): Promise<ProvidersTable> {
    const row = UUID.test(id) ? await store.findLive(id) : undefined;
    if (row === undefined) throw errorFrom(providerErrors, 'provider_not_found');
    return row;
  }

  async function assertNameFree(s: LockedProvidersStore, name: string, exceptId?: string): Promise<void> {
    const existing = await s.findLiveByName(name);
    if ((existing && existing.id !== exceptId) || (await s.aliasExists(name))) {
      throw errorFrom(providerErrors, 'provider_name_taken', { details: { name } });
    }
  }

  /**
   * The profile as it is stored: strategy settings written flat in `params` (the original's habit)
   * folded into `params.auth_strategy`, and an `api_key` provider's default header written in
   * (provider-params.ts). A setting given both ways with different values is refused here; the
   * other problems are validated with the rest.
   */
  function fold(
    profile: StoredProfile,
    previous?: StoredProfile,
  ): { profile: StoredProfile; problems: readonly Problem[] } {
    const folded = foldStrategySettings(profile, previous);
    if (folded.conflicts.length > 0)
      throw errorFrom(providerErrors, 'strategy_settings_conflict', { details: folded.conflicts });
    return { profile: { ...profile, params: folded.params }, problems: folded.problems };
  }

  /** Validation shared by create, replace and patch; discovery runs last, only for a valid profile. */
  async function check(
    profile: StoredProfile,
    hasClientSecret: boolean,
    previous?: StoredProfile,
    newSecret?: string,
    foldProblems: readonly Problem[] = [],
  ): Promise<void> {
    validate(profile, hasClientSecret, newSecret, foldProblems);
    await discover(profile, previous);
  }

  /** The profile's own rules (no I/O): throws `invalid_provider` with every problem. */
  function validate(
    profile: StoredProfile,
    hasClientSecret: boolean,
    newSecret?: string,
    foldProblems: readonly Problem[] = [],
  ): void {
    const problems = [...foldProblems];
    problems.push(
      ...validateProfile(profile, {
        allowLoopbackHttp: deps.allowLoopbackHttp,
        hasClientSecret,
        ...(deps.egressAllowedCidrs ? { egressAllowedCidrs: deps.egressAllowedCidrs } : {}),
      }),
    );
    if (
      profile.auth_type === 'oauth2' &&
      profile.auth_header === 'private_key_jwt' &&
      newSecret !== undefined
    ) {
      const key = parseClientKey(newSecret);
      if (!key.ok) problems.push({ path: 'client_secret', message: key.message });
    }
    if (problems.length > 0) throw errorFrom(providerErrors, 'invalid_provider', { details: problems });
  }

  /** Fetches the issuer's discovery document when the profile starts to rely on it. */
  async function discover(profile: StoredProfile, previous?: StoredProfile): Promise<void> {
    const discoveryChanged = !previous?.enable_discovery || previous.issuer !== profile.issuer;
    if (profile.auth_type === 'oauth2' && profile.enable_discovery && profile.issuer && discoveryChanged) {
      await discovery.refresh(profile.issuer);
    }
  }

  /**
   * Issue #18, "no admin path to a stored secret": an admin key alone must not be able to send a
   * stored secret somewhere new. A write that changes a destination field is accepted when it
   * carries the stored client secret itself (whoever sends it holds it already), or when nothing
   * stored would go there: no client secret kept, and no connection holding credentials. Runs
   * before anything is fetched or written, so a refusal changes nothing.
   */
  async function guardDestinations(
    row: ProvidersTable,
    before: StoredRecord,
    after: StoredProfile,
    secret: string | null | undefined,
    keepSecret: boolean,
  ): Promise<{ fields: string[]; basis: DestinationBasis } | undefined> {
    const fields = destinationChanges(before, after);
    if (fields.length === 0) return undefined;
    if (typeof secret === 'string' && before.has_client_secret) {
      const stored = await creds.getSecret(refOf(row));
      if (stored !== undefined && timingSafeEqual(digest(stored), digest(secret)))
        return { fields, basis: 'current_client_secret' };
    }
    // The stored secret would go to the new destination at the next token request.
    if (keepSecret) throw errorFrom(providerErrors, 'provider_secret_required', { details: { fields } });
    // Users' refresh tokens and credentials would: a new secret proves nothing about them.
    if (await store.connectionsHoldCredentials(row.id))
      throw errorFrom(providerErrors, 'provider_destination_locked', { details: { fields } });
    return { fields, basis: 'no_stored_credentials' };
  }

  /**
   * Warnings for a profile just written (`{warnings}`, or nothing when there are none): for an
   * oauth2 provider with `openid` in its default scopes and no `enable_discovery`, whether its
   * id_tokens will be verified or discarded (issue #17). Reads the discovery document live
   * (through the egress guard); never refuses the write.
   */
  async function warningsFor(profile: StoredProfile): Promise<{ warnings?: ProviderWarning[] }> {
    const warning = await openidWarning(profile, (issuer) => discovery.refresh(issuer));
    return warning === undefined ? {} : { warnings: [warning] };
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

  /** The live row `resolve` describes (see there). */
  async function resolveRow(ref: string): Promise<ProvidersTable> {
    const lookup = async (name: string) =>
      (await store.findLiveByName(name)) ?? (await store.findLiveByAlias(name));
    const folded = ref.trim().toLowerCase();
    const row =
      (UUID.test(ref) ? await store.findLive(ref) : undefined) ??
      (await lookup(ref)) ??
      (folded !== ref && folded !== '' ? await lookup(folded) : undefined);
    if (row === undefined) throw errorFrom(providerErrors, 'provider_not_found');
    return row;
  }

  async function view(row: ProvidersTable, aliases?: string[]): Promise<ProviderView> {
    const { has_client_secret, ...profile } = await hydrate(row);
    return {
      id: row.id,
      ...profile,
      has_client_secret,
      aliases: aliases ?? (await store.aliasesOf(row.id)),
      version: row.version,
      created_at: new Date(row.created_at).toISOString(),
      updated_at: new Date(row.updated_at).toISOString(),
    };
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
    const before = await hydrate(row);
    const folded = fold(written, before);
    const profile = folded.profile;
    // Switching to a static type drops the client secret: it has no use there.
    // So does a switch between a shared secret and private_key_jwt: the stored value is the wrong kind.
    const sameKind =
      (before.auth_header === 'private_key_jwt') === (profile.auth_header === 'private_key_jwt');
    const keepSecret =
      secret === undefined && before.has_client_secret && profile.auth_type === 'oauth2' && sameKind;
    const hasSecret = typeof secret === 'string' || keepSecret;
    // A profile that is not valid says so first; discovery is fetched only once the change may go.
    validate(profile, hasSecret, secret ?? undefined, folded.problems);
    const destination = await guardDestinations(row, before, profile, secret, keepSecret);
    await discover(profile, before);
    const record: StoredRecord = { ...profile, has_client_secret: hasSecret };
    const stored = JSON.stringify(rowRecord(record));
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
    try {
      if (creds.external) {
        // A row written under `internal` still holds the id itself: the backend gets it now, since
        // the row written below will not.
        const idInBackend = parseRecord(row).has_client_id === true;
        if (profile.client_id === undefined) {
          if (before.client_id !== undefined) await creds.deleteClientId(ref);
        } else if (profile.client_id !== before.client_id || !idInBackend) {
          await creds.putClientId(ref, profile.client_id);
        }
      }
      if (typeof secret === 'string') await creds.putSecret(ref, secret);
    } catch (cause) {
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
    return view({
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
      const { profile, problems } = fold(normalized.profile);
      await check(profile, secret !== undefined, undefined, secret, problems);
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
            profile: JSON.stringify(rowRecord(record)),
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
      return { id, ...(await warningsFor(profile)) };
    },

    /** What a registration answers besides success: see `warningsFor`. */
    warningsFor,

    async replace(
      ctx: AuditContext,
      id: string,
      input: ProfileInput,
      ifMatch?: string,
    ): Promise<ProviderView & { warnings?: ProviderWarning[] }> {
      const row = await mustFind(id);
      const { profile, secret } = normalize(input);
      const view = await write(ctx, row, profile, secret, ifMatch);
      return { ...view, ...(await warningsFor(profile)) };
    },

    async patch(
      ctx: AuditContext,
      id: string,
      patch: ProfilePatch,
      ifMatch?: string,
    ): Promise<ProviderView & { warnings?: ProviderWarning[] }> {
      const row = await mustFind(id);
      const { has_client_secret: _, ...current } = await hydrate(row);
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
      return { ...view, ...(await warningsFor(profile)) };
    },

    async remove(ctx: AuditContext, id: string, ifMatch?: string): Promise<void> {
      await removeRow(ctx, await mustFind(id), ifMatch);
    },

    /** `DELETE /providers/by-name/{name}`: the provider `resolve` finds by that name, deleted. Its id. */
    async removeByName(ctx: AuditContext, name: string, ifMatch?: string): Promise<string> {
      const row = await resolveRow(name);
      await removeRow(ctx, row, ifMatch);
      return row.id;
    },

    async get(id: string): Promise<ProviderView> {
      return view(await mustFind(id));
    },

    async list(): Promise<{ id: string; name: string }[]> {
      return (await store.listLive(10_000)).map((r) => ({ id: r.id, name: r.name }));
    },

    /**
     * The v1 metadata shape: `{auth_type: {name: {id, api_base_url, user_info_endpoint, scopes,
     * description, category}}}`, of the providers the caller may see: an admin key every one, an
     * agent those its grant names (agents/grants.ts), no caller none.
     */
    async metadata(caller: Principal | undefined): Promise<Metadata> {
      const out: Metadata = {};
      for (const row of await store.listLive(10_000)) {
        if (!principalMaySeeProvider(caller, row.id)) continue;
        const p = parseRecord(row);
        out[row.auth_type] ??= {};
        out[row.auth_type]![row.name] = {
          id: row.id,
          api_base_url: p.api_base_url ?? '',
          user_info_endpoint: p.user_info_endpoint ?? '',
          scopes: p.scopes,
          description: p.description ?? '',
          category: p.category ?? '',
        };
      }
      return out;
    },

    /**
     * A live provider by id, name or alias (names win over aliases; they never collide). When none
     * has exactly that name, the name trimmed and in lower case, as the original resolved
     * `provider_name` (`C1-IDP` finds `c1-idp`); names and aliases are lower case, so the match is
     * case-insensitive and never ambiguous.
     */
    async resolve(ref: string): Promise<ProviderView> {
      return view(await resolveRow(ref));
    },

    /** For the handshake (server-side only): the profile and its decrypted client secret. */
    async loadForUse(
      id: string,
    ): Promise<{ id: string; profile: StoredProfile; clientSecret: string | undefined }> {
      const row = await mustFind(id);
      const { has_client_secret, ...profile } = await hydrate(row);
      const clientSecret = has_client_secret ? await creds.getSecret(refOf(row)) : undefined;
      // The row says there is a client id / secret: never go upstream without it.
      if (parseRecord(row).has_client_id === true && profile.client_id === undefined)
        throw secretError('secret_backend_unavailable', {
          detail: `the client id of provider ${row.name} is missing from the secret backend`,
        });
      if (has_client_secret && clientSecret === undefined)
        throw secretError('secret_backend_unavailable', {
          detail: `the client secret of provider ${row.name} is missing from the secret backend`,
        });
      return { id: row.id, profile, clientSecret };
    },

    async addAlias(ctx: AuditContext, id: string, alias: string): Promise<string[]> {
      const row = await mustFind(id);
      await store.withNameLock(async (s) => {
        if ((await s.findLiveByName(alias)) || (await s.aliasExists(alias)))
          throw errorFrom(providerErrors, 'alias_taken', { details: { alias } });
        // The provider may have been deleted since it was read: its aliases would outlive it.
        if ((await s.findLive(row.id)) === undefined) throw errorFrom(providerErrors, 'provider_not_found');
        await s.insertAlias(alias, row.id, now());
      });
      await audit.record(ctx, {
        action: 'provider.alias_added',
        resourceType: 'provider',
        resourceId: row.id,
        details: { name: row.name, alias },
      });
      return store.aliasesOf(row.id);
    },

    async removeAlias(ctx: AuditContext, id: string, alias: string): Promise<void> {
      const row = await mustFind(id);
      if (!(await store.deleteAlias(alias, row.id))) throw errorFrom(providerErrors, 'alias_not_found');
      await audit.record(ctx, {
        action: 'provider.alias_removed',
        resourceType: 'provider',
        resourceId: row.id,
        details: { name: row.name, alias },
      });
    },

    async aliases(id: string): Promise<string[]> {
      return store.aliasesOf((await mustFind(id)).id);
    },
  };
}

export type ProvidersService = ReturnType<typeof createProvidersService>;
export type { AuthType };
