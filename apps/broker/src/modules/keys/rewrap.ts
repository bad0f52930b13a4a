import { sql } from 'kysely';
import { type Binding, keyIdOfCiphertext, open, seal } from '../../crypto/envelope.ts';
import type { KeyRing } from '../../crypto/keyring.ts';
import type { Database } from '../../db/client.ts';
import { signingKeyBinding } from '../agents/signing-keys.ts';
import { credentialsBinding } from '../connections/connections.types.ts';
import { type BackendTokens, isBackendMarker } from '../connections/maintenance.ts';
import { heldBinding } from '../consent/confirm.service.ts';
import { verifierBinding } from '../consent/consent.service.ts';
import { webhookSecretBinding } from '../events/webhooks.service.ts';
import { bindingFor } from '../secrets/internal.backend.ts';

/**
 * Every encrypted column in the database. A module that adds one registers it here, so that
 * `nexus keys rewrap` and `nexus doctor` cover it; `test/sealed-columns.test.ts` reads every byte
 * column from the migrated database's catalogue and fails on one that is neither here nor in
 * `NOT_SEALED_BYTE_COLUMNS`.
 */
export interface EncryptedColumn {
  readonly table: string;
  readonly idColumn: string;
  readonly column: string;
  readonly binding: (id: string) => Binding;
}

export const ENCRYPTED_COLUMNS: readonly EncryptedColumn[] = [
  { table: 'secret_store', idColumn: 'path', column: 'value', binding: bindingFor },
  { table: 'connections', idColumn: 'id', column: 'credentials', binding: credentialsBinding },
  { table: 'consent_flows', idColumn: 'id', column: 'verifier', binding: verifierBinding },
  { table: 'consent_confirmations', idColumn: 'id', column: 'held', binding: heldBinding },
  { table: 'webhooks', idColumn: 'id', column: 'secret', binding: webhookSecretBinding },
  { table: 'signing_keys', idColumn: 'kid', column: 'private_key', binding: signingKeyBinding },
];

/**
 * Byte columns (BLOB, BYTEA on PostgreSQL) that hold no ciphertext, each with the reason. None
 * yet: a new one must be declared here, or registered above, before the sealed-columns test passes.
 */
export const NOT_SEALED_BYTE_COLUMNS: readonly { table: string; column: string; why: string }[] = [];

export interface RewrapProgress {
  readonly table: string;
  /** Rows examined so far in this table, and the table's row count when the run began. */
  readonly scanned: number;
  readonly total: number;
  readonly rewrapped: number;
}

export interface RewrapResult {
  readonly scanned: number;
  readonly rewrapped: number;
  readonly alreadyCurrent: number;
  /** Rows that could not be opened (tampered, or sealed with a key that is not in the ring). */
  readonly failed: readonly { table: string; id: string; reason: string }[];
  readonly interrupted: boolean;
}

type Row = { id: string; value: Uint8Array };

/** Longer than the secret backends' own retries (Vault: 3 × 10 s), so a put never outlives it. */
const TOKEN_LEASE_MS = 60_000;

/**
 * Re-seals the secret-backend copy of one connection's credentials under the connection's
 * refresh lease, so a concurrent refresh cannot write new tokens that this would overwrite with
 * the old ones. `busy` when a refresh holds the lease (run again later).
 */
export async function rewrapBackendTokens(
  tokens: BackendTokens,
  id: string,
): Promise<'rewrapped' | 'current' | 'busy'> {
  if (!(await tokens.store.holdLease(id, tokens.owner, TOKEN_LEASE_MS))) return 'busy';
  try {
    const row = await tokens.store.find(id);
    // Revoked or moved back to the column since the page was read: nothing in the backend to keep.
    if (row === undefined || !isBackendMarker(row.credentials)) return 'current';
    // A full lease for the put itself (it re-seals the copy in place; a refresh that took the
    // lease over would have written its tokens to a path of their own, so a late put could only
    // leave an old copy no row names).
    if (!(await tokens.store.renewLease(id, tokens.owner, TOKEN_LEASE_MS))) return 'busy';
    return (await tokens.credentials.rewrap(id, row.credentials!)) ? 'rewrapped' : 'current';
  } finally {
    await tokens.store.dropLease(id, tokens.owner);
  }
}

/** One keyset page of an encrypted column, ordered by id. */
async function pageOf(
  db: Database,
  col: EncryptedColumn,
  after: string | undefined,
  limit: number,
): Promise<Row[]> {
  const table = sql.table(col.table);
  const idCol = sql.ref(col.idColumn);
  const valueCol = sql.ref(col.column);
  const where =
    after === undefined
      ? sql`WHERE ${valueCol} IS NOT NULL`
      : sql`WHERE ${valueCol} IS NOT NULL AND ${idCol} > ${after}`;
  const result =
    await sql<Row>`SELECT ${idCol} AS id, ${valueCol} AS value FROM ${table} ${where} ORDER BY ${idCol} LIMIT ${limit}`.execute(
      db.kysely,
    );
  return result.rows;
}

/**
 * Re-encrypts every ciphertext not sealed with the primary key. Works in keyset-ordered batches,
 * each in its own short transaction, and updates a row only if it still holds the ciphertext that
 * was read (a concurrent write wins). Safe to interrupt at any point: rows already done carry the
 * primary key id and are skipped on the next run, so running again resumes.
 */
export async function rewrap(
  db: Database,
  ring: KeyRing,
  options: {
    batchSize?: number;
    signal?: AbortSignal;
    onProgress?: (p: RewrapProgress) => void;
    /** Connection credentials kept in the secret backend (rows holding the marker). */
    tokens?: BackendTokens;
  } = {},
): Promise<RewrapResult> {
  const batchSize = options.batchSize ?? 200;
  const k = db.kysely;
  let scannedAll = 0;
  let rewrappedAll = 0;
  let current = 0;
  const failed: { table: string; id: string; reason: string }[] = [];
  for (const col of ENCRYPTED_COLUMNS) {
    const table = sql.table(col.table);
    const idCol = sql.ref(col.idColumn);
    const valueCol = sql.ref(col.column);
    const countRow = await sql<{
      n: number | string;
    }>`SELECT COUNT(*) AS n FROM ${table} WHERE ${valueCol} IS NOT NULL`.execute(k);
    const total = Number(countRow.rows[0]?.n ?? 0);
    let scanned = 0;
    let rewrapped = 0;
    let after: string | undefined;
    for (;;) {
      if (options.signal?.aborted) {
        return {
          scanned: scannedAll + scanned,
          rewrapped: rewrappedAll + rewrapped,
          alreadyCurrent: current,
          failed,
          interrupted: true,
        };
      }
      const page = await pageOf(db, col, after, batchSize);
      if (page.length === 0) break;
      // Crypto happens before the transaction; the transaction only writes.
      const updates: { id: string; old: Uint8Array; sealed: Uint8Array }[] = [];
      for (const row of page) {
        if (col.table === 'connections' && isBackendMarker(row.value)) {
          const outcome =
            options.tokens === undefined
              ? 'no access to the secret backend'
              : await rewrapBackendTokens(options.tokens, row.id).catch(
                  (error: unknown) => (error as { code?: string }).code ?? 'secret backend error',
                );
          if (outcome === 'rewrapped') rewrapped++;
          else if (outcome === 'current') current++;
          else
            failed.push({
              table: col.table,
              id: row.id,
              reason:
                outcome === 'busy'
                  ? 'secret backend copy: a refresh holds the lease; run again'
                  : `secret backend copy: ${outcome}`,
            });
          continue;
        }
        if (keyIdOfCiphertext(row.value) === ring.primaryKid) {
          current++;
          continue;
        }
        try {
          const binding = col.binding(row.id);
          updates.push({
            id: row.id,
            old: row.value,
            sealed: seal(ring, open(ring, row.value, binding), binding),
          });
        } catch (error) {
          failed.push({
            table: col.table,
            id: row.id,
            reason: (error as { detail?: string }).detail ?? (error as Error).message,
          });
        }
      }
      if (updates.length > 0) {
        const changed: string[] = [];
        await k.transaction().execute(async (trx) => {
          for (const u of updates) {
            const result =
              await sql`UPDATE ${table} SET ${valueCol} = ${u.sealed} WHERE ${idCol} = ${u.id} AND ${valueCol} = ${u.old}`.execute(
                trx,
              );
            const n = Number(result.numAffectedRows ?? 0n);
            rewrapped += n;
            if (n === 0) changed.push(u.id);
          }
        });
        // Written meanwhile (the concurrent write wins): fine if it sealed with the primary or
        // removed the value; otherwise it is still under an older key, and this run says so.
        for (const id of changed) {
          const now = await sql<{
            value: Uint8Array | null;
          }>`SELECT ${valueCol} AS value FROM ${table} WHERE ${idCol} = ${id}`.execute(k);
          const value = now.rows[0]?.value ?? null;
          if (value === null) continue;
          if (!isBackendMarker(value) && keyIdOfCiphertext(value) === ring.primaryKid) current++;
          else
            failed.push({
              table: col.table,
              id,
              reason:
                'written by another process while this run re-encrypted it, not under the new key: run again',
            });
        }
      }
      scanned += page.length;
      after = page[page.length - 1]!.id;
      options.onProgress?.({ table: col.table, scanned, total, rewrapped });
      // SQLite calls are synchronous: yield so a pending SIGINT/SIGTERM can abort between batches.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    scannedAll += scanned;
    rewrappedAll += rewrapped;
  }
  return {
    scanned: scannedAll,
    rewrapped: rewrappedAll,
    alreadyCurrent: current,
    failed,
    interrupted: false,
  };
}

/**
 * How many ciphertexts of one column are sealed with each key id (`unreadable`: not an envelope).
 * `backendCopy` is called for each connection row whose credentials are kept in the secret backend
 * (TOKEN_STORE=secret-backend), with the marker the row holds, and answers that copy's key id.
 */
export async function columnKeyUsage(
  db: Database,
  col: EncryptedColumn,
  backendCopy?: (connectionId: string, marker: Uint8Array) => Promise<string | undefined>,
): Promise<Map<string, number>> {
  const usage = new Map<string, number>();
  let after: string | undefined;
  for (;;) {
    const page = await pageOf(db, col, after, 1000);
    if (page.length === 0) break;
    for (const row of page) {
      let kid: string | undefined;
      if (col.table === 'connections' && isBackendMarker(row.value)) {
        if (backendCopy === undefined) continue;
        kid = await backendCopy(row.id, row.value);
        if (kid === undefined) continue;
      } else kid = keyIdOfCiphertext(row.value) ?? 'unreadable';
      usage.set(kid, (usage.get(kid) ?? 0) + 1);
    }
    after = page[page.length - 1]!.id;
  }
  return usage;
}

/** How many ciphertexts in the database are sealed with each key id (is a rewrap still needed?). */
export async function ciphertextKeyUsage(db: Database): Promise<Map<string, number>> {
  const usage = new Map<string, number>();
  for (const col of ENCRYPTED_COLUMNS)
    for (const [kid, n] of await columnKeyUsage(db, col)) usage.set(kid, (usage.get(kid) ?? 0) + n);
  return usage;
}
