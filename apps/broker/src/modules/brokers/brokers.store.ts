import type { Database } from '../../db/client.ts';
import type { BrokerProcessesTable } from '../../db/schema.ts';
import { type BrokerProcess, LIVE_MS, type LiveBrokers } from './brokers.types.ts';

/** Entries of processes gone this long are deleted by any heartbeat. */
const FORGET_MS = 3_600_000;

const kidList = (text: string): string[] => {
  const parsed = JSON.parse(text) as unknown;
  return Array.isArray(parsed) ? parsed.filter((k): k is string => typeof k === 'string') : [];
};

const fromRow = (row: BrokerProcessesTable): BrokerProcess => ({
  id: row.id,
  host: row.host,
  pid: Number(row.pid),
  role: row.role,
  startedAt: Number(row.started_at),
  heartbeatAt: Number(row.heartbeat_at),
  rings: { encryption: kidList(row.encryption_kids), userSecrets: kidList(row.user_secrets_kids) },
  keySource: row.key_source,
});

/** The process registry (`broker_processes`); this store is its only writer. */
export function createBrokersStore(db: Database): BrokersStore {
  const k = db.kysely;
  return {
    /** Writes the process's entry, or refreshes it (heartbeat and rings) if it exists. */
    async upsert(p: BrokerProcess): Promise<void> {
      const rings = {
        encryption_kids: JSON.stringify(p.rings.encryption),
        user_secrets_kids: JSON.stringify(p.rings.userSecrets),
      };
      const updated = await k
        .updateTable('broker_processes')
        .set({ heartbeat_at: p.heartbeatAt, ...rings })
        .where('id', '=', p.id)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) > 0) return;
      // First heartbeat, or the entry was forgotten while this process was suspended.
      await k
        .insertInto('broker_processes')
        .values({
          id: p.id,
          host: p.host,
          pid: p.pid,
          role: p.role,
          started_at: p.startedAt,
          heartbeat_at: p.heartbeatAt,
          key_source: p.keySource,
          ...rings,
        })
        .onConflict((oc) => oc.column('id').doUpdateSet({ heartbeat_at: p.heartbeatAt, ...rings }))
        .execute();
    },

    async remove(id: string): Promise<void> {
      await k.deleteFrom('broker_processes').where('id', '=', id).execute();
    },

    /** Processes that sent a heartbeat in the last `LIVE_MS` before `now`, oldest first. */
    async live(now: number): Promise<BrokerProcess[]> {
      const rows = await k
        .selectFrom('broker_processes')
        .selectAll()
        .where('heartbeat_at', '>=', now - LIVE_MS)
        .orderBy('started_at')
        .orderBy('id')
        .limit(1000)
        .execute();
      return rows.map(fromRow);
    },

    /** Deletes the entries of processes gone for an hour (nobody else removes a killed one). */
    async forgetGone(now: number): Promise<number> {
      const result = await k
        .deleteFrom('broker_processes')
        .where('heartbeat_at', '<', now - FORGET_MS)
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}

/** The registry's rows: what `presence.ts` writes, and `LiveBrokers` for everyone who reads. */
export interface BrokersStore extends LiveBrokers {
  /** Writes the process's entry, or refreshes it (heartbeat and rings) if it exists. */
  upsert(p: BrokerProcess): Promise<void>;
  remove(id: string): Promise<void>;
  /** Deletes the entries of processes gone for an hour (nobody else removes a killed one). */
  forgetGone(now: number): Promise<number>;
}
