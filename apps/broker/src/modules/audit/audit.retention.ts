import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Database } from '../../db/client.ts';
import { replaceFileDurably } from '../../durable-file.ts';
import { GENESIS_HASH } from './audit.chain.ts';

const BATCH = 1000;

export interface RetentionResult {
  removed: number;
  /** Export files written, one per batch: `audit-<first seq>-<last seq>.jsonl`. */
  files: string[];
}

/**
 * Audit retention (NEXUS_AUDIT_RETENTION_DAYS; 0 keeps everything). Removes events older than the
 * retention from the oldest end of the chain, in batches: each batch is first written to a JSON
 * Lines file in the export directory (mode 0600, flushed and renamed into place, its directory
 * flushed: durable-file.ts), then deleted, and the chain's anchor (`audit_chain.pruned_seq/
 * pruned_hash`) moves to its last event, all while the chain head row is locked, so replicas never
 * prune concurrently and appends wait for a moment.
 * Only a contiguous prefix is removed: the first event newer than the cutoff stops the batch.
 */
export function createAuditRetention(deps: {
  db: Database;
  retentionMs: number;
  exportDir: string;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;
  const k = deps.db.kysely;

  async function pruneBatch(cutoff: number): Promise<{ removed: number; file?: string }> {
    return k.transaction().execute(async (trx) => {
      let anchorQuery = trx.selectFrom('audit_chain').select(['pruned_seq']).where('id', '=', 1);
      if (deps.db.dialect === 'postgres') anchorQuery = anchorQuery.forUpdate();
      const anchor = await anchorQuery.executeTakeFirstOrThrow();
      const rows = await trx
        .selectFrom('audit_events')
        .selectAll()
        .where('seq', '>', anchor.pruned_seq)
        .orderBy('seq')
        .limit(BATCH)
        .execute();
      const end = rows.findIndex((r) => r.occurred_at >= cutoff);
      const old = end === -1 ? rows : rows.slice(0, end);
      if (old.length === 0) return { removed: 0 };
      const first = old[0]!;
      const last = old.at(-1)!;
      mkdirSync(deps.exportDir, { recursive: true, mode: 0o700 });
      const file = join(deps.exportDir, `audit-${first.seq}-${last.seq}.jsonl`);
      // On the disk, directory entry included, before the events leave the database.
      replaceFileDurably(file, `${old.map((r) => JSON.stringify(r)).join('\n')}\n`);
      await trx
        .deleteFrom('audit_events')
        .where('seq', '>=', first.seq)
        .where('seq', '<=', last.seq)
        .execute();
      await trx
        .updateTable('audit_chain')
        .set({ pruned_seq: last.seq, pruned_hash: last.hash })
        .where('id', '=', 1)
        .execute();
      return { removed: old.length, file };
    });
  }

  return {
    /** Where verification starts: after the last removed event, from its hash. */
    async anchor(): Promise<{ seq: number; hash: string }> {
      const row = await k
        .selectFrom('audit_chain')
        .select(['pruned_seq', 'pruned_hash'])
        .where('id', '=', 1)
        .executeTakeFirst();
      return row === undefined
        ? { seq: 0, hash: GENESIS_HASH }
        : { seq: row.pruned_seq, hash: row.pruned_hash };
    },

    async runOnce(): Promise<RetentionResult> {
      const result: RetentionResult = { removed: 0, files: [] };
      if (deps.retentionMs <= 0) return result;
      const cutoff = now() - deps.retentionMs;
      for (;;) {
        const batch = await pruneBatch(cutoff);
        if (batch.file) result.files.push(batch.file);
        result.removed += batch.removed;
        if (batch.removed < BATCH) return result;
      }
    },
  };
}

export type AuditRetention = ReturnType<typeof createAuditRetention>;
