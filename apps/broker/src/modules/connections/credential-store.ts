import { keyIdOfCiphertext, open, seal, sealText } from '../../crypto/envelope.ts';
import type { KeyRing } from '../../crypto/keyring.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { SecretBackend } from '../secrets/secret-backend.ts';
import { connectionErrors } from './connections.errors.ts';
import { credentialsBinding, type StoredCredentials } from './connections.types.ts';

/** `TOKEN_STORE`: where a connection's sealed credentials are kept. */
export type TokenStore = 'database' | 'secret-backend';

/**
 * What `connections.credentials` holds when the credentials are in the secret backend. It is not
 * an envelope (an envelope starts with the format byte 0x01), so it can never be mistaken for one.
 */
export const BACKEND_MARKER: Uint8Array = new Uint8Array(Buffer.from('nexus:secret-backend', 'ascii'));

/** Whether a `connections.credentials` value points at the secret backend. */
export function isBackendMarker(value: Uint8Array | null): boolean {
  return value !== null && Buffer.from(BACKEND_MARKER).equals(Buffer.from(value));
}

/** The backend path of a connection's credentials (under the backend's own prefix). */
export const credentialsPath = (connectionId: string) => `connections/${connectionId}`;

/**
 * Where connection credentials live (decision 0010). Either way they are sealed with the key ring
 * and bound to the connection (`credentialsBinding`); with `secret-backend` the same ciphertext is
 * put at `connections/<id>` in the secret backend and the column keeps only `BACKEND_MARKER`.
 * Reads go by what the row holds, not by the setting, so rows written under either setting (or
 * half-way through `nexus secrets migrate --tokens`) stay readable.
 */
export interface CredentialStore {
  readonly mode: TokenStore;
  /** Seals `creds`, stores them where `mode` says, and returns what the column must hold. */
  write(connectionId: string, creds: StoredCredentials): Promise<Uint8Array>;
  /** The credentials of a row whose `credentials` column is not null. */
  read(row: { id: string; credentials: Uint8Array | null }): Promise<StoredCredentials>;
  /** Deletes the backend copy, if any. Idempotent; a no-op for `database` rows. */
  remove(connectionId: string): Promise<void>;
  /**
   * Re-seals the backend copy under the ring's primary key; `false` when it already was.
   * The caller excludes concurrent writers (it holds the connection's refresh lease).
   */
  rewrap(connectionId: string): Promise<boolean>;
  /** The key id of the backend copy's envelope, or undefined when there is none. */
  keyIdOf(connectionId: string): Promise<string | undefined>;
  /** The sealed bytes of the backend copy, or undefined (for migration). */
  getSealed(connectionId: string): Promise<Uint8Array | undefined>;
  /** Puts already sealed bytes at the connection's path and reads them back (for migration). */
  putSealed(connectionId: string, sealed: Uint8Array): Promise<void>;
}

/** The text of decrypted bytes, read in place (no decoder object per read). */
const utf8 = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');

export function createCredentialStore(deps: {
  mode: TokenStore;
  ring: KeyRing;
  secrets: SecretBackend;
  /** The old backend while migrating (`SECRET_BACKEND_FALLBACK`): read when `secrets` has no copy. */
  fallback?: SecretBackend | undefined;
}): CredentialStore {
  const { mode, ring, secrets, fallback } = deps;

  async function getSealed(id: string): Promise<Uint8Array | undefined> {
    const path = credentialsPath(id);
    const found = (await secrets.get(path)) ?? (fallback === undefined ? null : await fallback.get(path));
    return found?.value;
  }

  const parse = (id: string, sealed: Uint8Array) =>
    JSON.parse(utf8(open(ring, sealed, credentialsBinding(id)))) as StoredCredentials;

  return {
    mode,
    async write(id, creds) {
      const sealed = sealText(ring, JSON.stringify(creds), credentialsBinding(id));
      if (mode === 'database') return sealed;
      await secrets.put(credentialsPath(id), sealed);
      return BACKEND_MARKER;
    },
    async read(row) {
      // The token hot path with TOKEN_STORE=database: the column, no I/O.
      if (!isBackendMarker(row.credentials)) return parse(row.id, row.credentials!);
      const sealed = await getSealed(row.id);
      if (sealed === undefined)
        throw errorFrom(connectionErrors, 'credentials_missing', {
          detail: `connection ${row.id}: the row points at the secret backend, which has nothing at ${credentialsPath(row.id)}`,
        });
      return parse(row.id, sealed);
    },
    async remove(id) {
      await secrets.delete(credentialsPath(id));
      await fallback?.delete(credentialsPath(id));
    },
    async rewrap(id) {
      const sealed = await getSealed(id);
      if (sealed === undefined || keyIdOfCiphertext(sealed) === ring.primaryKid) return false;
      const binding = credentialsBinding(id);
      await secrets.put(credentialsPath(id), seal(ring, open(ring, sealed, binding), binding));
      return true;
    },
    async keyIdOf(id) {
      const sealed = await getSealed(id);
      return sealed === undefined ? undefined : keyIdOfCiphertext(sealed);
    },
    getSealed,
    async putSealed(id, sealed) {
      const path = credentialsPath(id);
      await secrets.put(path, sealed);
      const back = await secrets.get(path);
      if (back === null || !Buffer.from(back.value).equals(Buffer.from(sealed)))
        throw errorFrom(connectionErrors, 'credentials_missing', {
          detail: `connection ${id}: the copy at ${path} did not read back`,
        });
    },
  };
}
