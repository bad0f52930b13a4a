import type { SecretBackend } from '../secrets/secret-backend.ts';
import { createProviderCredentials, type ProviderRef } from './provider-credentials.ts';
import type { ProvidersStore } from './providers.store.ts';

export type MigrationOutcome =
  | 'copied'
  | 'unchanged'
  | 'no-credentials'
  | 'failed'
  | 'would-copy'
  | 'conflict';

export interface MigrationResult {
  readonly total: number;
  readonly copied: number;
  readonly unchanged: number;
  readonly noCredentials: number;
  readonly wouldCopy: number;
  /** Providers whose target already holds a different value (also listed in `failed`). */
  readonly conflicts: number;
  readonly failed: { readonly name: string; readonly reason: string }[];
  readonly interrupted: boolean;
}

interface Row {
  client_id?: string;
  has_client_id?: boolean;
  has_client_secret?: boolean;
  [key: string]: unknown;
}

const reasonOf = (error: unknown) => {
  const e = error as { code?: string; message?: string; detail?: string };
  return `${e.code ? `${e.code}: ` : ''}${e.message ?? String(error)}${e.detail ? ` (${e.detail})` : ''}`.slice(
    0,
    300,
  );
};

/**
 * Copies every live provider's credentials from one backend to another, in the target's layout
 * (by id for `internal`, by name for the others; see provider-credentials.ts), reading each copy
 * back before counting it. Idempotent and resumable: a provider whose target already holds the
 * same values is `unchanged`, so a run that was interrupted (signal, crash, a backend failure)
 * is finished by running it again. Nothing is deleted from the source: the switch is made by
 * changing SECRET_BACKEND afterwards, and the old copies stay until the operator removes them.
 *
 * A target that already holds a *different* value (a credential rotated there while
 * SECRET_BACKEND_FALLBACK was set, say) is never overwritten: the provider is reported as a
 * conflict (in `failed`, so the run exits non-zero) unless `force` is set.
 *
 * Provider rows are changed only when moving to `internal`, whose layout keeps the client id in
 * the row: the id is written back into it (harmless for a broker still on the old backend).
 */
export async function migrateProviderCredentials(deps: {
  store: ProvidersStore;
  from: SecretBackend;
  to: SecretBackend;
  dryRun: boolean;
  /** Overwrite target values that differ from the source (default: report them as conflicts). */
  force?: boolean;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number, name: string, outcome: MigrationOutcome) => void;
}): Promise<MigrationResult> {
  const source = createProviderCredentials(deps.from, { cacheMs: 0 });
  const target = createProviderCredentials(deps.to, { cacheMs: 0 });
  const rows = await deps.store.listLive(100_000);
  const result = {
    total: rows.length,
    copied: 0,
    unchanged: 0,
    noCredentials: 0,
    wouldCopy: 0,
    conflicts: 0,
    failed: [] as { name: string; reason: string }[],
    interrupted: false,
  };
  let done = 0;
  for (const listed of rows) {
    if (deps.signal?.aborted) {
      result.interrupted = true;
      break;
    }
    let outcome: MigrationOutcome;
    try {
      outcome = await migrateOne(listed.id);
    } catch (error) {
      if (error instanceof Conflict) {
        outcome = 'conflict';
        result.conflicts++;
      } else outcome = 'failed';
      result.failed.push({ name: listed.name, reason: reasonOf(error) });
    }
    if (outcome === 'copied') result.copied++;
    else if (outcome === 'unchanged') result.unchanged++;
    else if (outcome === 'no-credentials') result.noCredentials++;
    else if (outcome === 'would-copy') result.wouldCopy++;
    deps.onProgress?.(++done, rows.length, listed.name, outcome);
  }
  return result;

  async function migrateOne(id: string): Promise<MigrationOutcome> {
    const row = await deps.store.findLive(id);
    if (row === undefined) return 'no-credentials'; // deleted since the listing
    const record = JSON.parse(row.profile) as Row;
    const ref: ProviderRef = { id: row.id, name: row.name };
    const clientId = record.client_id ?? (record.has_client_id ? await source.getClientId(ref) : undefined);
    const secret = record.has_client_secret ? await source.getSecret(ref) : undefined;
    if (
      target.external &&
      record.client_id === undefined &&
      ((record.has_client_id && clientId === undefined) || (record.has_client_secret && secret === undefined))
    ) {
      // The row is already in the target's layout (written by a broker on the target backend):
      // the source never had these values. Done if the target holds everything the row says.
      const [haveId, haveSecret] = await Promise.all([target.getClientId(ref), target.getSecret(ref)]);
      const holds =
        (!record.has_client_id || haveId !== undefined) &&
        (!record.has_client_secret || haveSecret !== undefined);
      if (holds) {
        const idDiffers = clientId !== undefined && haveId !== clientId;
        const secretDiffers = secret !== undefined && haveSecret !== secret;
        if (!idDiffers && !secretDiffers) return 'unchanged';
        if (!deps.force) throw new Conflict(idDiffers ? 'client id' : 'client secret');
        if (deps.dryRun) return 'would-copy';
        if (idDiffers) await target.putClientId(ref, clientId);
        if (secretDiffers) await target.putSecret(ref, secret);
        return 'copied';
      }
    }
    if (record.has_client_id && clientId === undefined)
      throw new Error('the client id is missing from the source backend');
    if (record.has_client_secret && secret === undefined)
      throw new Error('the client secret is missing from the source backend');
    if (secret === undefined && (clientId === undefined || !target.external)) {
      // Nothing to move into the backend; a client id may still need to go back into the row.
      if (!target.external && record.has_client_id) return writeRow(row, record, clientId);
      return 'no-credentials';
    }

    const wantId = target.external ? clientId : undefined;
    const [haveId, haveSecret] = await Promise.all([target.getClientId(ref), target.getSecret(ref)]);
    const rowNeedsId = !target.external && record.client_id === undefined && clientId !== undefined;
    if (haveId === wantId && haveSecret === secret && !rowNeedsId) return 'unchanged';
    // Never overwrite a different value the target already holds (it may be the newer one).
    if (!deps.force) {
      if (wantId !== undefined && haveId !== undefined && haveId !== wantId) throw new Conflict('client id');
      if (secret !== undefined && haveSecret !== undefined && haveSecret !== secret)
        throw new Conflict('client secret');
    }
    if (deps.dryRun) return 'would-copy';

    if (wantId !== undefined && haveId !== wantId) await target.putClientId(ref, wantId);
    if (secret !== undefined && haveSecret !== secret) await target.putSecret(ref, secret);
    // Read back before it counts: a write the backend did not keep must not be reported copied.
    const [backId, backSecret] = await Promise.all([target.getClientId(ref), target.getSecret(ref)]);
    if (backId !== wantId || backSecret !== secret) throw new Error('the copy did not read back identical');
    if (rowNeedsId) await writeRow(row, record, clientId);
    return 'copied';
  }

  async function writeRow(
    row: NonNullable<Awaited<ReturnType<ProvidersStore['findLive']>>>,
    record: Row,
    clientId: string | undefined,
  ): Promise<MigrationOutcome> {
    if (deps.dryRun) return 'would-copy';
    const { has_client_id: _, ...rest } = record;
    const next = clientId === undefined ? rest : { ...rest, client_id: clientId };
    const ok = await deps.store.update(row.id, row.version, {
      name: row.name,
      auth_type: row.auth_type,
      profile: JSON.stringify(next),
      updated_at: row.updated_at,
    });
    if (!ok) throw new Error('the provider changed during the migration; run it again');
    return 'copied';
  }
}

class Conflict extends Error {
  readonly code = 'conflict';
  constructor(what: string) {
    super(
      `the target already holds a different ${what}; nothing was overwritten (decide which is current, correct or remove the stale copy, and run again)`,
    );
  }
}
