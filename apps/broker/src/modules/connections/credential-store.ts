import { randomBytes } from 'node:crypto';
import { keyIdOfCiphertext, open, seal, sealText } from '../../crypto/envelope.ts';
import type { KeyRing } from '../../crypto/keyring.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { SecretBackend } from '../secrets/secret-backend.ts';
import { connectionErrors } from './connections.errors.ts';
import { credentialsBinding, type StoredCredentials } from './connections.types.ts';

/** `TOKEN_STORE`: where a connection's sealed credentials are kept. */
export type TokenStore = 'database' | 'secret-backend';

const MARKER_TEXT = 'nexus:secret-backend';

/**
 * What `connections.credentials` held, before write ids, when the credentials are in the secret
 * backend at `connections/<id>`. It is not an envelope (an envelope starts with the format byte
 * 0x01), so it can never be mistaken for one. Rows written since hold `markerFor(writeId)`.
 */
export const BACKEND_MARKER: Uint8Array = new Uint8Array(Buffer.from(MARKER_TEXT, 'ascii'));

/** A write id: 16 random bytes, base64url. */
const WRITE_ID = /^[A-Za-z0-9_-]{22}$/;

/**
 * The column value of credentials written to `connections/<id>/<writeId>`. Every write goes to a
 * path of its own (decision 0010), so a write that lands late (its process stalled past its
 * lease, and another took over and stored newer tokens) creates a copy no row points at instead
 * of overwriting the current one.
 */
export const markerFor = (writeId: string): Uint8Array =>
  new Uint8Array(Buffer.from(`${MARKER_TEXT}:${writeId}`, 'ascii'));

/** The write id a column names; '' for the legacy marker; undefined when it is not a marker. */
function writeIdOf(value: Uint8Array | null): string | undefined {
  // The token hot path with TOKEN_STORE=database: an envelope's first byte ends it.
  if (value === null || value[0] !== 0x6e || value.length < BACKEND_MARKER.length) return undefined;
  const text = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1');
  if (text === MARKER_TEXT) return '';
  if (!text.startsWith(`${MARKER_TEXT}:`)) return undefined;
  const writeId = text.slice(MARKER_TEXT.length + 1);
  return WRITE_ID.test(writeId) ? writeId : undefined;
}

/** Whether a `connections.credentials` value points at the secret backend. */
export function isBackendMarker(value: Uint8Array | null): boolean {
  return writeIdOf(value) !== undefined;
}

/** The legacy backend path of a connection's credentials (under the backend's own prefix). */
export const credentialsPath = (connectionId: string) => `connections/${connectionId}`;

/** The backend path a marker names. */
export function backendPath(connectionId: string, marker: Uint8Array): string {
  const writeId = writeIdOf(marker);
  if (writeId === undefined)
    throw new Error(`connection ${connectionId}: the column is not a backend marker`);
  return writeId === '' ? credentialsPath(connectionId) : `${credentialsPath(connectionId)}/${writeId}`;
}

/** The connection id of a backend path (`connections/<id>` or `connections/<id>/<writeId>`). */
export function connectionOfPath(path: string): string | undefined {
  const prefix = credentialsPath('');
  if (!path.startsWith(prefix)) return undefined;
  const id = path.slice(prefix.length).split('/')[0];
  return id === '' ? undefined : id;
}

/**
 * Where connection credentials live (decision 0010). Either way they are sealed with the key ring
 * and bound to the connection (`credentialsBinding`); with `secret-backend` the same ciphertext is
 * put at `connections/<id>/<writeId>` in the secret backend and the column keeps only the marker
 * naming it. Reads go by what the row holds, not by the setting, so rows written under either
 * setting (or half-way through `nexus secrets migrate --tokens`) stay readable.
 */
export interface CredentialStore {
  readonly mode: TokenStore;
  /**
   * Seals `creds`, stores them where `mode` says (in the backend: at a new path), and returns what
   * the column must hold. Once the row holds it, `discard` the copy the row held before; when the
   * row could not be written, `discard` this one.
   */
  write(connectionId: string, creds: StoredCredentials): Promise<Uint8Array>;
  /** The credentials of a row whose `credentials` column is not null. */
  read(row: { id: string; credentials: Uint8Array | null }): Promise<StoredCredentials>;
  /** Deletes the backend copy a column value names; a no-op for a sealed column. Idempotent. */
  discard(connectionId: string, column: Uint8Array | null): Promise<void>;
  /**
   * Deletes every backend copy of a connection, if any: first the one `column` names (the row's,
   * when the caller read it: a listing may not show a copy made a moment ago), then the others.
   * Idempotent; a no-op for `database` rows.
   */
  remove(connectionId: string, column?: Uint8Array | null): Promise<void>;
  /** The backend paths holding copies of a connection's credentials (for migration). */
  copiesOf(connectionId: string): Promise<string[]>;
  /**
   * Deletes every backend copy of a connection but the one `keep` names (for migration, under the
   * connection's lease: a refresh that took it over may have pointed the row at another copy).
   */
  removeOthers(connectionId: string, keep: Uint8Array): Promise<void>;
  /**
   * Re-seals the backend copy `column` names under the ring's primary key, in place; `false` when
   * it already was. The caller excludes concurrent writers (it holds the connection's refresh lease).
   */
  rewrap(connectionId: string, column: Uint8Array): Promise<boolean>;
  /** The key id of the backend copy `column` names, or undefined when there is none. */
  keyIdOf(connectionId: string, column: Uint8Array): Promise<string | undefined>;
  /** The sealed bytes of the backend copy `column` names, or undefined (for migration). */
  getSealed(connectionId: string, column: Uint8Array): Promise<Uint8Array | undefined>;
  /** Puts already sealed bytes at a new path, reads them back, and returns the marker (for migration). */
  putSealed(connectionId: string, sealed: Uint8Array): Promise<Uint8Array>;
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

  /** The sealed bytes at a backend path (the fallback backend's when the primary has none). */
  async function sealedAt(path: string): Promise<Uint8Array | undefined> {
    const found = (await secrets.get(path)) ?? (fallback === undefined ? null : await fallback.get(path));
    return found?.value;
  }
  const getSealed = (id: string, column: Uint8Array) => sealedAt(backendPath(id, column));

  /** Puts sealed bytes at a path of their own; returns the marker naming it. */
  async function putNew(id: string, sealed: Uint8Array): Promise<{ marker: Uint8Array; path: string }> {
    const marker = markerFor(randomBytes(16).toString('base64url'));
    const path = backendPath(id, marker);
    await secrets.put(path, sealed, { fresh: true });
    return { marker, path };
  }

  /** Every path under `connections/<id>/` in one backend, page by page. */
  async function listed(backend: SecretBackend, id: string): Promise<string[]> {
    const prefix = `${credentialsPath(id)}/`;
    const paths: string[] = [];
    for (let after: string | undefined; ; ) {
      const page = await backend.list(prefix, { limit: 1000, ...(after === undefined ? {} : { after }) });
      paths.push(...page);
      if (page.length < 1000) return paths;
      after = page[page.length - 1];
    }
  }

  async function discard(id: string, column: Uint8Array | null): Promise<void> {
    if (!isBackendMarker(column)) return;
    const path = backendPath(id, column!);
    await secrets.delete(path);
    await fallback?.delete(path);
  }

  async function copiesOf(id: string): Promise<string[]> {
    const legacy = (await secrets.get(credentialsPath(id))) === null ? [] : [credentialsPath(id)];
    return [...legacy, ...(await listed(secrets, id))];
  }

  const parse = (id: string, sealed: Uint8Array) =>
    JSON.parse(utf8(open(ring, sealed, credentialsBinding(id)))) as StoredCredentials;

  return {
    mode,
    async write(id, creds) {
      const sealed = sealText(ring, JSON.stringify(creds), credentialsBinding(id));
      if (mode === 'database') return sealed;
      return (await putNew(id, sealed)).marker;
    },
    async read(row) {
      // The token hot path with TOKEN_STORE=database: the column, no I/O.
      if (!isBackendMarker(row.credentials)) return parse(row.id, row.credentials!);
      const path = backendPath(row.id, row.credentials!);
      const sealed = await sealedAt(path);
      if (sealed === undefined)
        throw errorFrom(connectionErrors, 'credentials_missing', {
          detail: `connection ${row.id}: the row points at the secret backend, which has nothing at ${path}`,
        });
      return parse(row.id, sealed);
    },
    discard,
    async remove(id, column) {
      if (column !== undefined) await discard(id, column);
      for (const backend of fallback === undefined ? [secrets] : [secrets, fallback]) {
        await backend.delete(credentialsPath(id));
        for (const path of await listed(backend, id)) await backend.delete(path);
      }
    },
    copiesOf,
    async removeOthers(id, keep) {
      const kept = backendPath(id, keep);
      for (const path of await copiesOf(id)) if (path !== kept) await secrets.delete(path);
    },
    async rewrap(id, column) {
      const sealed = await getSealed(id, column);
      if (sealed === undefined || keyIdOfCiphertext(sealed) === ring.primaryKid) return false;
      const binding = credentialsBinding(id);
      await secrets.put(backendPath(id, column), seal(ring, open(ring, sealed, binding), binding));
      return true;
    },
    async keyIdOf(id, column) {
      const sealed = await getSealed(id, column);
      return sealed === undefined ? undefined : keyIdOfCiphertext(sealed);
    },
    getSealed,
    async putSealed(id, sealed) {
      const { marker, path } = await putNew(id, sealed);
      const back = await secrets.get(path);
      if (back === null || !Buffer.from(back.value).equals(Buffer.from(sealed)))
        throw errorFrom(connectionErrors, 'credentials_missing', {
          detail: `connection ${id}: the copy at ${path} did not read back`,
        });
      return marker;
    },
  };
}
