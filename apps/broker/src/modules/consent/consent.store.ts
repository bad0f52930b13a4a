import type { Database } from '../../db/client.ts';
import type { ConsentFlowsTable } from '../../db/schema.ts';
import { createConfirmStore } from './confirm.store.ts';

export function createConsentStore(db: Database) {
  const k = db.kysely;
  return {
    /** `consent_confirmations` (confirm.store.ts): the consents the app must confirm. */
    confirmations: createConfirmStore(db),

    async insert(row: ConsentFlowsTable): Promise<void> {
      await k.insertInto('consent_flows').values(row).execute();
    },

    /**
     * Marks a flow used and takes its verifier, atomically: of two callbacks with the same state
     * exactly one gets the row. The verifier is erased in the same statement.
     */
    async consume(id: string, now: number): Promise<ConsentFlowsTable | undefined> {
      const before = await k
        .selectFrom('consent_flows')
        .selectAll()
        .where('id', '=', id)
        .where('used_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      if (before === undefined) return undefined;
      const result = await k
        .updateTable('consent_flows')
        .set({ used_at: now, verifier: null })
        .where('id', '=', id)
        .where('used_at', 'is', null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1 ? before : undefined;
    },

    async find(id: string): Promise<ConsentFlowsTable | undefined> {
      return k.selectFrom('consent_flows').selectAll().where('id', '=', id).executeTakeFirst();
    },

    /** A pending static-credential flow, for the capture page (not consumed by reading). */
    async findOpen(id: string, now: number): Promise<ConsentFlowsTable | undefined> {
      return k
        .selectFrom('consent_flows')
        .selectAll()
        .where('id', '=', id)
        .where('used_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst();
    },

    /** Housekeeping: flows past expiry (used or not) are removed. */
    async deleteExpired(now: number): Promise<number> {
      const result = await k.deleteFrom('consent_flows').where('expires_at', '<', now).executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}

export type ConsentStore = ReturnType<typeof createConsentStore>;
