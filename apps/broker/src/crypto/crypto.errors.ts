import { defineErrors } from '../errors/nexus-error.ts';

export const cryptoErrors = defineErrors({
  // Both are operator problems, never the caller's: 500 with a generic message, detail in the log.
  decryption_failed: { status: 500, message: 'A stored secret could not be decrypted.' },
  key_not_in_ring: {
    status: 500,
    message: 'A stored secret was encrypted with a key this broker does not have.',
  },
});
