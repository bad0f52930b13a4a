/**
 * The providers service: the one entry point other modules use for providers. It wires the
 * module's concepts together, each in its own file:
 *
 * - provider-record.ts: the stored form of a profile (normalised input, the client id where the
 *   secret backend keeps it);
 * - provider-reads.ts: lookup by id, name or alias, the admin view, metadata, the handshake load;
 * - provider-checks.ts: folding, validation and discovery before a write, and its warnings;
 * - provider-destinations.ts: the guard on changing where stored secrets go (issue #18);
 * - provider-writes.ts: create, replace, patch and delete, row and secret backend in step;
 * - provider-aliases.ts: the other names a provider answers to;
 * - provider-credentials.ts: where the client id and secret live in the secret backend;
 * - credentials-migration.ts: copying them to another backend (`nexus secrets migrate --to`).
 */
import type { AuditService } from '../audit/audit.service.ts';
import type { SecretBackend } from '../secrets/secret-backend.ts';
import { type MigrationResult, migrateProviderCredentials } from './credentials-migration.ts';
import type { Discovery } from './discovery.ts';
import { createProviderAliases } from './provider-aliases.ts';
import { createProviderChecks } from './provider-checks.ts';
import { createProviderCredentials } from './provider-credentials.ts';
import { createDestinationGuard } from './provider-destinations.ts';
import { createProviderReads } from './provider-reads.ts';
import { createRecordCodec } from './provider-record.ts';
import { createProviderWrites } from './provider-writes.ts';
import type { AuthType } from './providers.schemas.ts';
import type { ProvidersStore } from './providers.store.ts';

/** The internal backend's path of a client secret (external backends use the provider name). */
export const clientSecretPath = (providerId: string) => `providers/${providerId}/client_secret`;

/** What `migrateCredentials` takes: everything but the source, which is this service's backend. */
export type CredentialsMigration = Omit<Parameters<typeof migrateProviderCredentials>[0], 'store' | 'from'>;

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
  const { store, audit } = deps;
  const now = deps.now ?? Date.now;
  const creds = createProviderCredentials(deps.secrets, { now, fallback: deps.secretsFallback });
  const codec = createRecordCodec(creds);
  const reads = createProviderReads({ store, creds, codec });
  const checks = createProviderChecks(deps);
  const guardDestinations = createDestinationGuard({ store, creds });
  const writes = createProviderWrites({ store, creds, codec, reads, checks, guardDestinations, audit, now });
  const aliases = createProviderAliases({ store, audit, reads, now });

  return {
    create: writes.create,
    /** What a registration answers besides success: see provider-checks.ts, `warningsFor`. */
    warningsFor: checks.warningsFor,
    replace: writes.replace,
    patch: writes.patch,
    remove: writes.remove,
    removeByName: writes.removeByName,
    get: reads.get,
    list: reads.list,
    metadata: reads.metadata,
    resolve: reads.resolve,
    loadForUse: reads.loadForUse,
    addAlias: aliases.addAlias,
    removeAlias: aliases.removeAlias,
    aliases: aliases.aliases,
    /** Copies every provider's credentials from SECRET_BACKEND to `to`, resumably (credentials-migration.ts). */
    migrateCredentials: (options: CredentialsMigration): Promise<MigrationResult> =>
      migrateProviderCredentials({ ...options, store, from: deps.secrets }),
  };
}

export type ProvidersService = ReturnType<typeof createProvidersService>;
export type { AuthType };
