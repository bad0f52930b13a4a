import type { SecretBackend } from '../secrets/secret-backend.ts';
import type { ConnectionsStore } from './connections.store.ts';
import {
  type CredentialStore,
  connectionOfPath,
  credentialsPath,
  isBackendMarker,
  type TokenStore,
} from './credential-store.ts';

export type TokenMoveOutcome = 'moved' | 'already-there' | 'would-move' | 'leftover-deleted' | 'busy';

export interface TokenMigrationResult {
  readonly total: number;
  readonly moved: number;
  readonly alreadyThere: number;
  readonly wouldMove: number;
  /** Backend copies left beside a row that holds its credentials (an interrupted run), deleted. */
  readonly leftoversDeleted: number;
  /**
   * Connections whose refresh lease was still held when the run stopped waiting for it (a long
   * refresh, or another run in progress): run again. Also listed in `failed`.
   */
  readonly busy: number;
  readonly failed: { readonly id: string; readonly reason: string }[];
  readonly interrupted: boolean;
}

/**
 * The lease a move holds. A move takes milliseconds; a run killed in the middle of one leaves its
 * lease behind, and the connection can be neither refreshed nor moved until it runs out.
 */
export const MIGRATION_LEASE_MS = 20_000;
/** How long a run waits, at the end, for the leases it found held: an interrupted run's, or a refresh's. */
export const BUSY_WAIT_MS = 60_000;
const BUSY_POLL_MS = 1_000;
const PAGE = 200;

/**
 * Moves connection credentials to where `to` says (decision 0010), in the configured secret
 * backend: `secret-backend` puts each row's sealed credentials at `connections/<id>`, reads the
 * copy back, then switches the row to the marker; `database` writes the backend copy back into
 * the row, then deletes it from the backend. Each connection is moved under its refresh lease,
 * so no refresh can write tokens that the move would then lose, and the row is switched only if
 * it still holds what was read. Idempotent and resumable: rows already in place are skipped, so
 * an interrupted run (even `kill -9`) is finished by running it again:
 * - a run killed between the copy and the switch left a copy that the next run writes again;
 * - one killed between the switch and the delete (`database`) left a copy nothing points at:
 *   the next run lists `connections/` in the backend (`backend`) and deletes such leftovers;
 * - one killed during a move left that connection's lease, which runs out after
 *   MIGRATION_LEASE_MS: the next run comes back to the connections it found leased, for up to
 *   `busyWaitMs` (`onWait` is told), and only then reports them busy.
 * A broker keeps serving throughout: it reads each row by what the row holds, whatever its own
 * `TOKEN_STORE` says.
 */
export async function migrateTokens(deps: {
  store: Pick<
    ConnectionsStore,
    | 'holdLease'
    | 'dropLease'
    | 'renewLease'
    | 'countWithCredentials'
    | 'pageWithCredentials'
    | 'credentialsOf'
    | 'credentialsOfOne'
    | 'switchCredentials'
  >;
  credentials: Pick<
    CredentialStore,
    'getSealed' | 'putSealed' | 'copiesOf' | 'discard' | 'removeOthers' | 'remove'
  >;
  /** The backend `credentials` writes to, to find leftover copies (`to: database`); none: not looked for. */
  backend?: Pick<SecretBackend, 'list'>;
  to: TokenStore;
  owner: string;
  dryRun: boolean;
  signal?: AbortSignal;
  /** How long to come back to leased connections (the CLI: BUSY_WAIT_MS); default 0, report them busy. */
  busyWaitMs?: number;
  onProgress?: (done: number, total: number) => void;
  /** The run is waiting for `count` connections whose lease is held. */
  onWait?: (count: number) => void;
}): Promise<TokenMigrationResult> {
  const { store } = deps;
  const toBackend = deps.to === 'secret-backend';
  const inPlace = (credentials: Uint8Array) => isBackendMarker(credentials) === toBackend;
  const total = await store.countWithCredentials('anywhere');
  const result = {
    total,
    moved: 0,
    alreadyThere: 0,
    wouldMove: 0,
    leftoversDeleted: 0,
    busy: 0,
    failed: [] as { id: string; reason: string }[],
    interrupted: false,
  };
  /** Connections found leased, to come back to. */
  const busy = new Set<string>();
  const settle = async (id: string, listed: Uint8Array | undefined, leftover: boolean) => {
    try {
      const outcome = await moveOne(id, listed, leftover);
      if (outcome === 'busy') busy.add(id);
      else {
        busy.delete(id);
        if (outcome === 'moved') result.moved++;
        else if (outcome === 'already-there') result.alreadyThere++;
        else if (outcome === 'would-move') result.wouldMove++;
        else result.leftoversDeleted++;
      }
    } catch (error) {
      busy.delete(id);
      const e = error as { code?: string; message?: string };
      result.failed.push({ id, reason: (e.code ?? e.message ?? String(error)).slice(0, 200) });
    }
  };
  const stopped = () => {
    result.interrupted ||= deps.signal?.aborted === true;
    return result.interrupted;
  };

  let done = 0;
  let after: string | undefined;
  for (;;) {
    const page = await store.pageWithCredentials(after, PAGE);
    if (page.length === 0) break;
    for (const row of page) {
      if (stopped()) return result;
      await settle(row.id, row.credentials, false);
      deps.onProgress?.(++done, total);
    }
    after = page[page.length - 1]!.id;
  }

  if (!toBackend && !deps.dryRun && deps.backend !== undefined) {
    // Leftovers: copies of connections whose row holds the credentials itself.
    const prefix = credentialsPath('');
    let last: string | undefined;
    for (;;) {
      const paths = await deps.backend.list(prefix, { limit: PAGE, ...(last ? { after: last } : {}) });
      if (paths.length === 0) break;
      last = paths[paths.length - 1];
      const ids = [
        ...new Set(paths.map(connectionOfPath).filter((id) => id !== undefined && !busy.has(id))),
      ] as string[];
      for (const row of await store.credentialsOf(ids)) {
        if (stopped()) return result;
        if (!isBackendMarker(row.credentials)) await settle(row.id, undefined, true);
      }
    }
  }

  const waitMs = deps.busyWaitMs ?? 0;
  if (busy.size > 0 && waitMs > 0) {
    deps.onWait?.(busy.size);
    const deadline = performance.now() + waitMs;
    while (busy.size > 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, BUSY_POLL_MS));
      for (const id of [...busy]) {
        if (stopped()) return result;
        // Whatever the lease holder did meanwhile, a copy left beside the row is deleted too.
        await settle(id, undefined, !toBackend);
      }
    }
  }
  for (const id of busy) {
    result.busy++;
    result.failed.push({
      id,
      reason: 'its refresh lease is still held (a refresh, or another run of this command); run again',
    });
  }
  return result;

  /**
   * One connection, under its lease. `listed`: the credentials the page read (skips rows already
   * in place without taking the lease). `leftover`: also delete a backend copy beside a row that
   * holds its credentials.
   */
  async function moveOne(
    id: string,
    listed: Uint8Array | undefined,
    leftover: boolean,
  ): Promise<TokenMoveOutcome> {
    if (listed !== undefined && inPlace(listed)) return 'already-there';
    if (deps.dryRun) return 'would-move';
    const leasedAt = performance.now();
    if (!(await store.holdLease(id, deps.owner, MIGRATION_LEASE_MS))) return 'busy';
    try {
      // Read again under the lease: a refresh may have written since the page was read.
      const held = await store.credentialsOfOne(id);
      if (held === undefined) return 'already-there'; // revoked or expired meanwhile
      if (inPlace(held)) {
        if (!leftover || (await deps.credentials.copiesOf(id)).length === 0) return 'already-there';
        await removeCopy(id, leasedAt);
        return 'leftover-deleted';
      }
      if (toBackend) {
        // Copy to a path of its own, read back (putSealed compares the bytes), then switch the
        // pointer. The lease is renewed first, so that it outlasts the backend's own retries and
        // the switch finds it ours (a refresh never writes while it is).
        if (!(await store.renewLease(id, deps.owner, MIGRATION_LEASE_MS)))
          throw new Error('the refresh lease was lost; run again');
        const marker = await deps.credentials.putSealed(id, held);
        if (!(await store.switchCredentials(id, held, marker, deps.owner))) {
          await deps.credentials.discard(id, marker).catch(() => {});
          throw new Error('the row changed; run again');
        }
        // A copy an interrupted run left (it copied, and was stopped before the switch): the
        // row names the new one. Only while the lease surely runs (a refresh that took it over
        // may have pointed the row at a copy of its own); a copy left is deleted with the connection.
        if (performance.now() - leasedAt <= MIGRATION_LEASE_MS / 2)
          await deps.credentials.removeOthers(id, marker).catch(() => {});
        return 'moved';
      }
      const sealed = await deps.credentials.getSealed(id, held);
      if (sealed === undefined) throw new Error('the row points at the secret backend, which has no copy');
      if (!(await store.switchCredentials(id, held, sealed, deps.owner)))
        throw new Error('the row changed; run again');
      await removeCopy(id, leasedAt);
      return 'moved';
    } finally {
      await store.dropLease(id, deps.owner);
    }
  }

  /**
   * Deletes the backend copy of a connection whose row now holds its credentials. Only while the
   * lease surely runs: once it has run out, a refresh on a broker with TOKEN_STORE=secret-backend
   * may have written a new copy and pointed the row at it, and deleting that would lose it. A copy
   * left here is deleted by the next run.
   */
  async function removeCopy(id: string, leasedAt: number): Promise<void> {
    if (performance.now() - leasedAt > MIGRATION_LEASE_MS / 2)
      throw new Error(
        `the move took too long to delete the backend copies at ${credentialsPath(id)}…; run again`,
      );
    await deps.credentials.remove(id).catch((error: unknown) => {
      throw new Error(
        `the row holds the credentials, but the backend copies at ${credentialsPath(id)}… could not be deleted (${(error as { code?: string }).code ?? 'error'}); run again`,
      );
    });
  }
}
