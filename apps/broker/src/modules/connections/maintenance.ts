import { type ConnectionImport, createConnectionImport } from './connections.import.ts';
import type { ConnectionsStore } from './connections.store.ts';
import type { CredentialStore } from './credential-store.ts';
import { migrateTokens } from './tokens-migration.ts';

/**
 * Store-level access for maintenance that works below the service, row by row, under each
 * connection's lease: `nexus keys rewrap` and the key reports (`keys/`), `nexus secrets migrate
 * --tokens`, `nexus import original`. Everything else reaches connections through
 * `ConnectionsService`. These are the only shapes of the store and the credential store that leave
 * this module; the container hands the CLI one `ConnectionsMaintenance`, never the stores.
 */

export { isBackendMarker } from './credential-store.ts';

/** What `nexus keys rewrap` needs to re-seal connection credentials kept in the secret backend. */
export interface BackendTokens {
  readonly credentials: Pick<CredentialStore, 'rewrap'>;
  readonly store: Pick<ConnectionsStore, 'holdLease' | 'dropLease' | 'find' | 'renewLease'>;
  /** The lease owner id this run uses. */
  readonly owner: string;
  readonly now?: () => number;
}

/** What the key reports (`nexus doctor`, `nexus keys status`) read of secret-backend copies. */
export type CredentialKeyIds = Pick<CredentialStore, 'keyIdOf'>;

type MigrateArgs = Parameters<typeof migrateTokens>[0];
type ImportArgs = Parameters<typeof createConnectionImport>[0];

/** The maintenance entry points the CLI takes from the container. */
export interface ConnectionsMaintenance {
  /** `nexus keys rewrap`: the connections' part, leased under `owner`. */
  backendTokens(owner: string): BackendTokens;
  /** Key ids of the secret-backend copies (key reports). */
  readonly keyIds: CredentialKeyIds;
  /**
   * How many connections keep their credentials in the secret backend (`TOKEN_STORE=secret-backend`):
   * `nexus secrets migrate --to` does not copy those, and warns when there are any.
   */
  countInSecretBackend(): Promise<number>;
  /** `nexus secrets migrate --tokens` (tokens-migration.ts). */
  migrateTokens(args: Omit<MigrateArgs, 'store' | 'credentials'>): ReturnType<typeof migrateTokens>;
  /** `nexus import original`: the writer of imported rows (connections.import.ts). */
  importer(args: Omit<ImportArgs, 'store' | 'credentials'>): ConnectionImport;
}

export function createMaintenance(
  store: ConnectionsStore,
  credentials: CredentialStore,
): ConnectionsMaintenance {
  return {
    backendTokens: (owner) => ({ credentials, store, owner }),
    keyIds: credentials,
    countInSecretBackend: () => store.countWithCredentials('in-backend'),
    migrateTokens: (args) => migrateTokens({ ...args, store, credentials }),
    importer: (args) => createConnectionImport({ ...args, store, credentials }),
  };
}
