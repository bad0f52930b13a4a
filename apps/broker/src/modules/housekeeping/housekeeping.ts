import type { AuditRetention } from '../audit/audit.retention.ts';
import type { ConnectionsService } from '../connections/connections.service.ts';
import type { ConsentService } from '../consent/consent.service.ts';

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
  /** Expires connections, emits their events and deletes their backend copies (lifecycle.ts). */
  connections: Pick<ConnectionsService, 'expirePending' | 'expireBroken'> &
    Partial<Pick<ConnectionsService, 'foldStatusCounts'>>;
  /** Consent flow rows belong to consent/: it deletes them. */
  consent: Pick<ConsentService, 'deleteExpiredFlows'>;
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

  return {
    async runOnce(): Promise<HousekeepingResult> {
      const t = now();
      let expiredConnections = 0;
      for (;;) {
        const ids = await deps.connections.expirePending(BATCH);
        expiredConnections += ids.length;
        if (ids.length < BATCH) break;
      }
      let gaveUp = 0;
      for (;;) {
        const ids = await deps.connections.expireBroken(t - giveUpMs, BATCH);
        gaveUp += ids.length;
        if (ids.length < BATCH) break;
      }
      // After the expiries above, whose status changes it counts (migration 0018).
      await deps.connections.foldStatusCounts?.();
      const deletedFlows = await deps.consent.deleteExpiredFlows(t - FLOW_RETENTION_MS);
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
