import type { AuditRetention } from '../audit/audit.retention.ts';
import type { ConnectionEventSink } from '../connections/connections.service.ts';
import type { ConnectionsStore } from '../connections/connections.store.ts';
import type { CredentialStore } from '../connections/credential-store.ts';
import type { ConsentStore } from '../consent/consent.store.ts';

/** Flow rows outlive their 10-minute validity by a day, so a late callback still gets a precise error. */
export const FLOW_RETENTION_MS = 24 * 3600_000;
const BATCH = 500;

export interface HousekeepingResult {
  expiredConnections: number;
  gaveUp: number;
  deletedFlows: number;
  /** Audit events removed by retention (after being exported). */
  auditRemoved: number;
  /** Connection events (and their finished webhook deliveries) past NEXUS_EVENT_RETENTION_DAYS. */
  eventsRemoved: number;
}

/**
 * Periodic clean-up: pending connections past their deadline become `expired`; connections broken
 * for longer than the give-up horizon (refresh failing with a dead access token, or
 * `attention_required` with nobody reconnecting) become `expired`; consent flow rows (whose PKCE
 * verifiers are already erased once used) are deleted after the retention period.
 */
export function createHousekeeping(deps: {
  connections: Pick<ConnectionsStore, 'expirePending' | 'expireBroken' | 'find'>;
  consent: Pick<ConsentStore, 'deleteExpired'>;
  events?: ConnectionEventSink;
  /** Expired connections' backend copies are deleted (`TOKEN_STORE=secret-backend`). */
  credentials?: Pick<CredentialStore, 'mode' | 'remove'>;
  auditRetention?: Pick<AuditRetention, 'runOnce'>;
  /** Spent client-assertion ids and signing keys past retirement are deleted. */
  agents?: { deleteExpiredAssertions(): Promise<number> };
  signingKeys?: { deleteRetired(): Promise<number> };
  /** Old connection events and their finished deliveries; `retentionMs` 0 keeps them. */
  eventLog?: {
    pruneBefore(cutoff: number, limit: number): Promise<{ deleted: number; more: boolean }>;
    retentionMs: number;
  };
  /** NEXUS_REFRESH_GIVE_UP_HOURS in milliseconds. */
  giveUpMs?: number;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;
  const giveUpMs = deps.giveUpMs ?? 168 * 3600_000;

  async function expired(id: string, reason: string): Promise<void> {
    if (deps.events === undefined) return;
    const row = await deps.connections.find(id);
    if (row === undefined) return;
    await deps.events.emit({
      connectionId: id,
      workspaceId: row.workspace_id,
      providerId: row.provider_id,
      type: 'connection.expired',
      details: { reason },
    });
  }

  return {
    async runOnce(): Promise<HousekeepingResult> {
      const t = now();
      let expiredConnections = 0;
      for (;;) {
        const ids = await deps.connections.expirePending(t, BATCH);
        for (const id of ids) await expired(id, 'not_completed');
        // A broker killed between storing a connection's tokens and activating it leaves a backend
        // copy that the row never pointed at: it goes with the row.
        if (deps.credentials?.mode === 'secret-backend')
          for (const id of ids) await deps.credentials.remove(id).catch(() => {});
        expiredConnections += ids.length;
        if (ids.length < BATCH) break;
      }
      let gaveUp = 0;
      for (;;) {
        const ids = await deps.connections.expireBroken(t - giveUpMs, t, BATCH);
        for (const id of ids) await expired(id, 'gave_up');
        if (deps.credentials?.mode === 'secret-backend')
          for (const id of ids) await deps.credentials.remove(id).catch(() => {});
        gaveUp += ids.length;
        if (ids.length < BATCH) break;
      }
      const deletedFlows = await deps.consent.deleteExpired(t - FLOW_RETENTION_MS);
      const auditRemoved = (await deps.auditRetention?.runOnce())?.removed ?? 0;
      await deps.agents?.deleteExpiredAssertions();
      await deps.signingKeys?.deleteRetired();
      let eventsRemoved = 0;
      const log = deps.eventLog;
      if (log !== undefined && log.retentionMs > 0)
        for (;;) {
          const { deleted, more } = await log.pruneBefore(t - log.retentionMs, BATCH);
          eventsRemoved += deleted;
          if (!more) break;
        }
      return { expiredConnections, gaveUp, deletedFlows, auditRemoved, eventsRemoved };
    },

    /** Runs every `intervalMs` until stopped; failures are reported, never fatal. */
    start(intervalMs: number, onResult: (result: HousekeepingResult | Error) => void): () => void {
      let running = false;
      const tick = async () => {
        if (running) return;
        running = true;
        try {
          onResult(await this.runOnce());
        } catch (error) {
          onResult(error as Error);
        } finally {
          running = false;
        }
      };
      const timer = setInterval(tick, intervalMs);
      timer.unref();
      void tick();
      return () => clearInterval(timer);
    },
  };
}

export type Housekeeping = ReturnType<typeof createHousekeeping>;
