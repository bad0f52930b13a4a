/**
 * A provider's stored form: the profile as `providers.profile` holds it (input normalised, the
 * client id moved to an external secret backend when there is one) and how it is read back.
 */
import type { ProvidersTable } from '../../db/schema.ts';
import type { ProviderCredentials, ProviderRef } from './provider-credentials.ts';
import type { ProfileInput, StoredProfile } from './providers.schemas.ts';

/**
 * What is stored in `providers.profile`: the profile plus whether a client secret exists. With an
 * external secret backend the client id is not in the row: `has_client_id` says one is stored in
 * the backend (see provider-credentials.ts).
 */
export interface StoredRecord extends StoredProfile {
  has_client_secret: boolean;
  has_client_id?: boolean;
}

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

/** The form of a provider id; anything else is looked up by name (or not at all). */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Splits input into the stored profile and the secret; "" and null mean "not set". */
export function normalize(input: ProfileInput): { profile: StoredProfile; secret: string | undefined } {
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

export function parseRecord(row: Pick<ProvidersTable, 'profile'>): StoredRecord {
  return JSON.parse(row.profile) as StoredRecord;
}

export const refOf = (row: Pick<ProvidersTable, 'id' | 'name'>): ProviderRef => ({
  id: row.id,
  name: row.name,
});

/** The fields a write changed, for the audit event (`client_secret` by name only, never its value). */
export function changedFields(before: StoredRecord, after: StoredRecord, secretChanged: boolean): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  keys.delete('has_client_secret');
  const changed = [...keys].filter(
    (k) => JSON.stringify(before[k as keyof StoredRecord]) !== JSON.stringify(after[k as keyof StoredRecord]),
  );
  if (secretChanged) changed.push('client_secret');
  return changed.sort();
}

/** Reads and writes the record of a row, with the client id where the secret backend keeps it. */
export function createRecordCodec(creds: Pick<ProviderCredentials, 'external' | 'getClientId'>) {
  return {
    /** The row's record as the row stores it, with the client id filled in from an external backend. */
    async hydrate(row: ProvidersTable): Promise<StoredRecord> {
      const { has_client_id, ...record } = parseRecord(row);
      if (!has_client_id) return record;
      const clientId = await creds.getClientId(refOf(row));
      return clientId === undefined ? record : { ...record, client_id: clientId };
    },

    /** What goes into the row: with an external backend, everything but the client id. */
    rowRecord(record: StoredRecord): StoredRecord {
      if (!creds.external || record.client_id === undefined) return record;
      const { client_id: _, ...rest } = record;
      return { ...rest, has_client_id: true };
    },
  };
}

export type RecordCodec = ReturnType<typeof createRecordCodec>;
