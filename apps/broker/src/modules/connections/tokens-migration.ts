import type { Database } from '../../db/client.ts';
import type { ConnectionsStore } from './connections.store.ts';
import {
  BACKEND_MARKER,
  type CredentialStore,
  isBackendMarker,
  type TokenStore,
} from './credential-store.ts';

export type TokenMoveOutcome = 'moved' | 'already-there' | 'would-move' | 'busy' | 'failed';

export interface TokenMigrationResult {
  readonly total: number;
  readonly moved: number;
  readonly alreadyThere: number;
  readonly wouldMove: number;
  /** Connections whose refresh lease was held by a refresh: run again. Also listed in `failed`. */
  readonly busy: number;
  readonly failed: { readonly id: string; readonly reason: string }[];
  readonly interrupted: boolean;
}

const LEASE_MS = 30_000;
const PAGE = 200;

/**
 * Moves connection credentials to where `to` says (decision 0010), in the configured secret
 * backend: `secret-backend` puts each row's sealed credentials at `connections/<id>`, reads the
 * copy back, then switches the row to the marker; `database` writes the backend copy back into
 * the row, then deletes it from the backend. Each connection is moved under its refresh lease,
 * so no refresh can write tokens that the move would then lose, and the row is switched only if
 * it still holds what was read. Idempotent and resumable: rows already in place are skipped, so
 * an interrupted run is finished by running it again. A broker keeps serving throughout: it reads
 * each row by what the row holds, whatever its own `TOKEN_STORE` says.
 */
export async function migrateTokens(deps: {
  db: Database;
  store: Pick<ConnectionsStore, 'holdLease' | 'dropLease'>;
  credentials: Pick<CredentialStore, 'getSealed' | 'putSealed' | 'remove'>;
  to: TokenStore;
  owner: string;
  dryRun: boolean;
  signal?: AbortSignal;
  now?: () => number;
  onProgress?: (done: number, total: number) => void;
}): Promise<TokenMigrationResult> {
  const k = deps.db.kysely;
  const now = deps.now ?? Date.now;
  const counted = await k
    .selectFrom('connections')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('credentials', 'is not', null)
    .executeTakeFirst();
  const total = Number(counted?.n ?? 0);
  const result = {
    total,
    moved: 0,
    alreadyThere: 0,
    wouldMove: 0,
    busy: 0,
    failed: [] as { id: string; reason: string }[],
    interrupted: false,
  };
  let done = 0;
  let after: string | undefined;
  for (;;) {
    let q = k
      .selectFrom('connections')
      .select(['id', 'credentials'])
      .where('credentials', 'is not', null)
      .orderBy('id')
      .limit(PAGE);
    if (after !== undefined) q = q.where('id', '>', after);
    const page = await q.execute();
    if (page.length === 0) break;
    for (const row of page) {
      if (deps.signal?.aborted) {
        result.interrupted = true;
        return result;
      }
      let outcome: TokenMoveOutcome;
      try {
        outcome = await moveOne(row.id, new Uint8Array(row.credentials!));
      } catch (error) {
        outcome = 'failed';
        const e = error as { code?: string; message?: string };
        result.failed.push({ id: row.id, reason: (e.code ?? e.message ?? String(error)).slice(0, 200) });
      }
      if (outcome === 'moved') result.moved++;
      else if (outcome === 'already-there') result.alreadyThere++;
      else if (outcome === 'would-move') result.wouldMove++;
      else if (outcome === 'busy') {
        result.busy++;
        result.failed.push({ id: row.id, reason: 'a refresh holds the lease; run again' });
      }
      deps.onProgress?.(++done, total);
    }
    after = page[page.length - 1]!.id;
  }
  return result;

  async function moveOne(id: string, listed: Uint8Array): Promise<TokenMoveOutcome> {
    if (isBackendMarker(listed) === (deps.to === 'secret-backend')) return 'already-there';
    if (deps.dryRun) return 'would-move';
    if (!(await deps.store.holdLease(id, deps.owner, now(), LEASE_MS))) return 'busy';
    try {
      // Read again under the lease: a refresh may have written since the page was read.
      const current = await k
        .selectFrom('connections')
        .select('credentials')
        .where('id', '=', id)
        .executeTakeFirst();
      if (current?.credentials == null) return 'already-there'; // revoked or expired meanwhile
      const held = new Uint8Array(current.credentials);
      if (isBackendMarker(held) === (deps.to === 'secret-backend')) return 'already-there';
      if (deps.to === 'secret-backend') {
        // Copy, read back (putSealed compares the bytes), then switch the pointer.
        await deps.credentials.putSealed(id, held);
        if (!(await switchRow(id, held, BACKEND_MARKER))) throw new Error('the row changed; run again');
        return 'moved';
      }
      const sealed = await deps.credentials.getSealed(id);
      if (sealed === undefined) throw new Error('the row points at the secret backend, which has no copy');
      if (!(await switchRow(id, held, sealed))) throw new Error('the row changed; run again');
      // After the row no longer points at it. A failure leaves an orphan that a rerun does not
      // see (the row is already migrated), so it is reported with what to delete.
      await deps.credentials.remove(id).catch((error: unknown) => {
        throw new Error(
          `moved into the row, but the backend copy connections/${id} could not be deleted (${(error as { code?: string }).code ?? 'error'}); delete it by hand`,
        );
      });
      return 'moved';
    } finally {
      await deps.store.dropLease(id, deps.owner);
    }
  }

  async function switchRow(id: string, from: Uint8Array, to: Uint8Array): Promise<boolean> {
    const updated = await k
      .updateTable('connections')
      .set({ credentials: to })
      .where('id', '=', id)
      .where('credentials', '=', from)
      .where('refresh_lease_owner', '=', deps.owner)
      .executeTakeFirst();
    return Number(updated.numUpdatedRows) === 1;
  }
}
