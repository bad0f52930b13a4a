import { defineErrors } from '../../errors/nexus-error.ts';

export const userSecretErrors = defineErrors({
  user_secret_not_found: { status: 404, message: 'No secret with that name in this zone for this user.' },
  user_secret_disabled: { status: 409, message: 'The secret is disabled; enable it to read it.' },
  user_secret_deleted: {
    status: 409,
    message: 'The secret is deleted; restore it before writing a new version.',
  },
  user_secret_scope_missing: {
    status: 403,
    message:
      "The on-behalf-of session lacks the scope this call needs: secrets:read to read a user's secrets, secrets:write to change them.",
  },
  unresolved_secrets: {
    status: 422,
    message: 'Some nexus-secret references could not be resolved; details.unresolved lists them.',
  },
  // 501, not 503: the broker is up and a retry will not help; the operator must set the key.
  user_secrets_not_configured: {
    status: 501,
    message:
      'User secrets are not configured: set USER_SECRETS_KEY (generate one with `nexus keys generate`).',
  },
});
