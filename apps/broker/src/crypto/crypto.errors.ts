import { defineErrors, NexusError } from '../errors/nexus-error.ts';

export const cryptoErrors = defineErrors({
  // Both are operator problems, never the caller's: 500 with a generic message, detail in the log.
  decryption_failed: { status: 500, message: 'A stored secret could not be decrypted.' },
  key_not_in_ring: {
    status: 500,
    message: 'A stored secret was encrypted with a key this broker does not have.',
  },
});

/**
 * Whether `error` says this process's key ring lacks the key a value was sealed with: a rotation
 * not rolled out here yet, the operator's to fix, never the fault of the record it names.
 */
export const isKeyNotInRing = (error: unknown): boolean =>
  error instanceof NexusError && error.code === 'key_not_in_ring';

/** How long a process whose ring lacks a record's key leaves that record's work to others. */
export const KEY_MISSING_RETRY_MS = 60_000;
