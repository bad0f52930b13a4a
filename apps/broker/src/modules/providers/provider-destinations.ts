/**
 * Where a provider sends what it stores, and the guard on changing it (issue #18, "no admin path
 * to a stored secret").
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ProvidersTable } from '../../db/schema.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { ProviderCredentials } from './provider-credentials.ts';
import { refOf, type StoredRecord } from './provider-record.ts';
import { providerErrors } from './providers.errors.ts';
import type { StoredProfile } from './providers.schemas.ts';
import type { ProvidersStore } from './providers.store.ts';
import { probeSpecFor } from './validation-probe.ts';

/**
 * Where a provider sends what it stores. The client secret, authorization codes and refresh tokens
 * go to the token endpoint (`token_url`, or learnt from the issuer's discovery document), tokens to
 * the revocation endpoint (`params.revocation_endpoint`, or discovered), the client credential in
 * the form `auth_header` says (a `private_key_jwt` assertion's audience is the issuer),
 * connection credentials to `api_base_url` through the credential proxy, a captured API key to
 * the capture probe (`params.validation`, else a static provider's `user_info_endpoint`), and a
 * new access token to the URLs of learnt values `from: api` (`params.learnt`).
 */
const DESTINATION_FIELDS = [
  'token_url',
  'issuer',
  'enable_discovery',
  'auth_header',
  'api_base_url',
] as const;

/** The destination fields (DESTINATION_FIELDS and those under `params`) a write changes. */
function destinationChanges(before: StoredProfile, after: StoredProfile): string[] {
  const differs = (a: unknown, b: unknown) => stable(a ?? null) !== stable(b ?? null);
  const fields: string[] = DESTINATION_FIELDS.filter((f) => differs(before[f], after[f]));
  // A provider of captured credentials sends each one typed to its capture probe: a probe that
  // goes to another origin is a new destination (a path under the guarded api_base_url is not).
  const probe = probeOrigin(after);
  if (probe !== null && probe !== probeOrigin(before))
    fields.push(
      (after.params.validation as { url?: unknown } | undefined)?.url !== undefined
        ? 'params.validation'
        : 'user_info_endpoint',
    );
  for (const field of PARAMS_DESTINATIONS)
    if (differs(destinationPart(before, field), destinationPart(after, field)))
      fields.push(`params.${field}`);
  return fields;
}

/** What of a `params` setting decides a destination: of a connection parameter, its pattern and default. */
function destinationPart(profile: StoredProfile, field: (typeof PARAMS_DESTINATIONS)[number]): unknown {
  const value = profile.params[field];
  if (field !== 'connection_parameters' || typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value as Record<string, { pattern?: unknown; default?: unknown } | null>).map(
      ([name, spec]) => [name, [spec?.pattern ?? null, spec?.default ?? null]],
    ),
  );
}

/**
 * Settings under `params` that decide where a secret goes:
 * - `revocation_endpoint`: tokens;
 * - `learnt`: values filled into the URLs above (and `from: api` URLs, fetched with each new access
 *   token);
 * - `connection_parameters`: what a connection may fill into their `{placeholders}` (a host, say).
 */
const PARAMS_DESTINATIONS = ['revocation_endpoint', 'learnt', 'connection_parameters'] as const;

/** The origin a provider's capture probe sends captured keys to (validation-probe.ts), or null for none. */
function probeOrigin(profile: StoredProfile): string | null {
  const url = probeSpecFor(profile)?.url;
  if (url === undefined) return null;
  return URL.parse(url)?.origin ?? `unparsed:${url}`;
}

/** JSON with object keys in order: the order settings were written in changes nothing. */
function stable(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`;
  if (typeof value !== 'object' || value === null) return JSON.stringify(value);
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stable(v)}`).join(',')}}`;
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/** Why a change of destination was accepted, for the audit event (never the secret itself). */
export type DestinationBasis = 'current_client_secret' | 'no_stored_credentials';

export function createDestinationGuard(deps: {
  store: Pick<ProvidersStore, 'connectionsHoldCredentials'>;
  creds: Pick<ProviderCredentials, 'getSecret'>;
}) {
  const { store, creds } = deps;
  /**
   * An admin key alone must not be able to send a stored secret somewhere new. A write that
   * changes a destination field is accepted when it carries the stored client secret itself
   * (whoever sends it holds it already), or when nothing stored would go there: no client secret
   * kept, and no connection holding credentials. Runs before anything is fetched or written, so a
   * refusal changes nothing.
   */
  return async function guardDestinations(
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
  };
}
