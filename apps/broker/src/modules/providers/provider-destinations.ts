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

/**
 * Where a provider sends what it stores. The client secret, authorization codes and refresh tokens
 * go to the token endpoint (`token_url`, or learnt from the issuer's discovery document), tokens to
 * the revocation endpoint (`params.revocation_endpoint`, or discovered), the client credential in
 * the form `auth_header` says (a `private_key_jwt` assertion's audience is the issuer),
 * connection credentials to `api_base_url` through the credential proxy, and a new access token
 * to the URLs of learnt values `from: api` (`params.learnt`).
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
  // A learnt value `from: api` is fetched with the connection's new access token.
  if (differs(learntApiUrls(before), learntApiUrls(after))) fields.push('params.learnt');
  // What a connection may fill into `{placeholders}` of the URLs above (a host, say): a wider
  // pattern or another default sends the client secret to a host the operator never typed.
  if (differs(parameterRules(before), parameterRules(after))) fields.push('params.connection_parameters');
  return fields;
}

/** A record's entries by name (the order they were written in changes nothing). */
const sorted = <T>(record: Record<string, T>): [string, T][] =>
  Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/** The URLs of a profile's learnt values fetched `from: api`, by name. */
function learntApiUrls(profile: StoredProfile): Record<string, unknown> {
  const learnt = profile.params.learnt;
  if (typeof learnt !== 'object' || learnt === null) return {};
  const urls: Record<string, unknown> = {};
  for (const [name, spec] of sorted(learnt as Record<string, { from?: unknown; url?: unknown }>))
    if (spec?.from === 'api') urls[name] = spec.url;
  return urls;
}

/** The pattern and default of each of a profile's connection parameters, by name. */
function parameterRules(profile: StoredProfile): Record<string, unknown> {
  const declared = profile.params.connection_parameters;
  if (typeof declared !== 'object' || declared === null) return {};
  const rules: Record<string, unknown> = {};
  for (const [name, spec] of sorted(declared as Record<string, { pattern?: unknown; default?: unknown }>))
    rules[name] = [spec?.pattern ?? null, spec?.default ?? null];
  return rules;
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
