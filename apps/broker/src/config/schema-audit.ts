import * as z from 'zod';

/** Retention of events and audit entries, and the audit log's export and group commit, part of `envSchema`. */
export const retentionAuditEnv = {
  NEXUS_EVENT_RETENTION_DAYS: z.coerce
    .number()
    .int()
    .min(0)
    .max(36500)
    .default(30)
    .describe(
      'Connection events (`/admin/v1/events`) and their finished webhook deliveries are deleted after this many days (an event with a delivery still pending stays until it finishes). 0 keeps them. The audit log, not the event feed, is the lasting record.',
    ),
  NEXUS_AUDIT_RETENTION_DAYS: z.coerce
    .number()
    .int()
    .min(0)
    .max(36500)
    .default(0)
    .describe(
      'Audit events older than this many days are exported to `NEXUS_AUDIT_EXPORT_DIR`, then deleted (the chain stays verifiable). 0 keeps every event.',
    ),
  NEXUS_AUDIT_EXPORT_DIR: z
    .string()
    .min(1)
    .max(1024)
    .optional()
    .describe(
      'Where retention writes the events it removes (JSON Lines, mode 0600, one file per batch). Defaults to `NEXUS_DATA_DIR/audit-export`.',
    ),
  NEXUS_AUDIT_BATCH_MAX: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(200)
    .describe('Most audit events written in one group commit.'),
};
