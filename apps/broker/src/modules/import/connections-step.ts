import type { ImportedConnection } from '../connections/connections.import.ts';
import type { ImportDeps, RowReport, Tally } from './import.types.ts';
import { OriginalDecryptError, openOriginal } from './original-crypto.ts';
import type { OriginalConnection } from './original-source.ts';
import { convertToken, sameCredentials, TokenShapeError } from './original-tokens.ts';
import { describeFailure, type ProviderMapping } from './providers-step.ts';

const PAGE = 200;

/** Statuses of the original that carry nothing to import, and what the report says about them. */
const NOTHING_TO_IMPORT: Readonly<Record<string, string>> = {
  pending: 'pending in the original: the user never finished consent; they connect again through Nexus',
  failed: 'failed in the original: there is no grant to import',
};

type Row = Omit<RowReport, 'kind' | 'id'>;

/**
 * Connections, in id order, each on its own (resumable: a row already in Nexus is compared, not
 * written again). `active` ones are imported with their tokens, re-sealed by the connections
 * module; `attention_required` ones without tokens, so that an agent asking by id gets the same
 * answer as before; `pending` and `failed` ones are skipped.
 */
export async function importConnections(
  deps: ImportDeps,
  tally: Tally,
  map: ReadonlyMap<string, ProviderMapping>,
): Promise<boolean> {
  const now = deps.now ?? Date.now;
  const total = await deps.source.countConnections();
  let done = 0;
  let after: string | undefined;
  for (;;) {
    const page = await deps.source.connections(after, PAGE);
    if (page.length === 0) return false;
    for (const c of page) {
      if (deps.signal?.aborted) return true;
      let row: Row;
      try {
        row = await one(c);
      } catch (error) {
        row = { outcome: 'failed', reason: describeFailure(error) };
      }
      tally.add({ kind: 'connection', id: c.id, ...row });
      deps.onProgress?.(++done, total);
    }
    after = page[page.length - 1]!.id;
  }

  async function one(c: OriginalConnection): Promise<Row> {
    const provider = map.get(c.provider_id);
    const named = provider ? { name: provider.name } : {};
    if (NOTHING_TO_IMPORT[c.status])
      return { ...named, outcome: 'skipped', reason: NOTHING_TO_IMPORT[c.status] };
    if (c.status !== 'active' && c.status !== 'attention_required')
      return {
        ...named,
        outcome: 'skipped',
        reason: `status "${c.status.slice(0, 40)}" is not one the original uses`,
      };
    if (provider === undefined)
      return { outcome: 'failed', reason: 'its provider_id names no provider_profiles row' };
    if (provider.blocked)
      return {
        ...named,
        outcome: provider.blocked.deleted ? 'skipped' : 'failed',
        reason: provider.blocked.reason,
      };
    const imported = toImport(c, provider);
    if (typeof imported === 'string') return { ...named, outcome: 'failed', reason: imported };

    const existing = await deps.nexus.connections.existing(c.id);
    if (existing === undefined) {
      if (!deps.apply || provider.nexusId === undefined) return { ...named, outcome: 'would_import' };
      const inserted = await deps.nexus.connections.insert(deps.ctx, {
        ...imported,
        providerId: provider.nexusId,
      });
      return inserted ? { ...named, outcome: 'imported' } : { ...named, outcome: 'unchanged' };
    }
    if (existing.workspaceId !== c.workspace_id || existing.providerId !== provider.nexusId)
      return {
        ...named,
        outcome: 'failed',
        reason: 'its id is already used in Nexus by a connection of another user or provider',
      };
    if (existing.status !== 'active' || imported.status !== 'active') {
      const same = existing.status === imported.status;
      return {
        ...named,
        outcome: 'unchanged',
        ...(same
          ? {}
          : {
              reason: `${imported.status} in the original, ${existing.status} in Nexus: left as Nexus has it`,
            }),
      };
    }
    if (sameCredentials(existing.credentials, imported.credentials!))
      return { ...named, outcome: 'unchanged' };
    if (existing.refreshedHere)
      return {
        ...named,
        outcome: 'unchanged',
        reason: "Nexus has refreshed it since it was imported: Nexus's tokens are newer and are kept",
      };
    if (!deps.apply) return { ...named, outcome: 'would_update', reason: 'the original has newer tokens' };
    const result = await deps.nexus.connections.replaceCredentials(deps.ctx, {
      ...imported,
      providerId: provider.nexusId,
    });
    if (result === 'updated')
      return { ...named, outcome: 'updated', reason: 'the original had newer tokens' };
    if (result === 'busy')
      return {
        ...named,
        outcome: 'failed',
        reason: 'its refresh lease is held (a refresh in progress); run again',
      };
    return {
      ...named,
      outcome: 'unchanged',
      reason: "Nexus refreshed it meanwhile: Nexus's tokens are kept",
    };
  }

  /** The row as the connections module takes it, or why it cannot be imported. */
  function toImport(
    c: OriginalConnection,
    provider: ProviderMapping,
  ): Omit<ImportedConnection, 'providerId'> | string {
    const base = {
      id: c.id,
      workspaceId: c.workspace_id,
      scopes: [...new Set(c.scopes ?? [])],
      createdAt: c.created_at.getTime(),
    };
    if (c.status === 'attention_required')
      return { ...base, status: 'attention_required', accessExpiresAt: null, accessIssuedAt: null };
    if (c.token === undefined) return 'active in the original, but it has no tokens row';
    if (c.token.encrypted_data === null) return 'its tokens row has no encrypted_data';
    try {
      const plaintext = openOriginal(deps.key, c.token.encrypted_data);
      const token = convertToken(provider.authType, plaintext, c.token, now());
      const scope = token.credentials.kind === 'oauth2' ? token.credentials.scope : undefined;
      return {
        ...base,
        // As activation does: the scopes the provider granted, when it said.
        ...(scope ? { scopes: [...new Set(scope.split(/\s+/))] } : {}),
        status: 'active',
        credentials: token.credentials,
        accessExpiresAt: token.expiresAt,
        accessIssuedAt: token.issuedAt,
      };
    } catch (error) {
      if (error instanceof OriginalDecryptError) return `tokens.encrypted_data ${error.message}`;
      if (error instanceof TokenShapeError) return error.message;
      throw error;
    }
  }
}
