/**
 * How providers are found and shown: by id, by name or alias (`resolve`), as the admin view, as
 * the v1 metadata the caller may see, and with its client secret for the handshake (server-side
 * only).
 */
import type { Principal } from '../../auth/principal.ts';
import type { ProvidersTable } from '../../db/schema.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import { principalMaySeeProvider } from '../agents/grants.ts';
import { secretError } from '../secrets/secrets.errors.ts';
import type { ProviderCredentials } from './provider-credentials.ts';
import { parseRecord, type RecordCodec, refOf, UUID } from './provider-record.ts';
import { providerErrors } from './providers.errors.ts';
import type { ProviderView, StoredProfile } from './providers.schemas.ts';
import type { ProvidersStore } from './providers.store.ts';

export type Metadata = Record<
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

export function createProviderReads(deps: {
  store: Pick<ProvidersStore, 'findLive' | 'findLiveByName' | 'findLiveByAlias' | 'aliasesOf' | 'listLive'>;
  creds: Pick<ProviderCredentials, 'getSecret'>;
  codec: Pick<RecordCodec, 'hydrate'>;
}) {
  const { store, creds, codec } = deps;

  async function mustFind(id: string): Promise<ProvidersTable> {
    const row = UUID.test(id) ? await store.findLive(id) : undefined;
    if (row === undefined) throw errorFrom(providerErrors, 'provider_not_found');
    return row;
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
    const { has_client_secret, ...profile } = await codec.hydrate(row);
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

  return {
    mustFind,
    resolveRow,
    view,

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
      const { has_client_secret, ...profile } = await codec.hydrate(row);
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
  };
}

export type ProviderReads = ReturnType<typeof createProviderReads>;
