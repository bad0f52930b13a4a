import { keyIdOfCiphertext } from '../../crypto/envelope.ts';
import type { SecretBackend } from '../secrets/secret-backend.ts';
import { type UserSecretsStore, type VersionKey, versionPath } from './user-secrets.store.ts';

/**
 * What leaves this module for maintenance below the service: the key reports (`nexus doctor`,
 * `keys/key-report.ts`) learn which keys the stored versions are sealed with, without reading
 * `user_secret_versions` or knowing where the values are kept. The container builds one
 * `UserSecretsMaintenance`; `nexus keys rewrap` goes through the service (`rewrap`).
 */

/** What the key reports read of user secrets. */
export interface UserSecretKeyIds {
  /**
   * The key id of each stored version's value (the inner envelope, sealed with the user-secrets
   * ring), one per version, in a stable order: `undefined` when the backend could not read it or
   * it is no envelope. A version whose value is gone from the backend yields nothing.
   */
  ofVersions(): AsyncIterable<string | undefined>;
}

export interface UserSecretsMaintenance {
  /** Key ids of the stored versions (key reports). */
  readonly keyIds: UserSecretKeyIds;
}

/** Versions read per query: the walk never holds every row. */
const PAGE = 500;

export function createMaintenance(
  store: Pick<UserSecretsStore, 'versionsAfter'>,
  backend: Pick<SecretBackend, 'get'>,
): UserSecretsMaintenance {
  async function* ofVersions(): AsyncGenerator<string | undefined> {
    let after: VersionKey | undefined;
    for (;;) {
      const rows = await store.versionsAfter(after, PAGE);
      if (rows.length === 0) return;
      for (const row of rows) {
        const stored = await backend.get(versionPath(row.secret_id, row.version)).catch(() => undefined);
        if (stored === null) continue; // deleted from the backend: nothing sealed to report
        yield stored === undefined ? undefined : keyIdOfCiphertext(stored.value);
      }
      after = rows[rows.length - 1]!;
    }
  }
  return { keyIds: { ofVersions } };
}
