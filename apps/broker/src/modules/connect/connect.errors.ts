import { defineErrors, defineReturnUrlErrors } from '../../errors/nexus-error.ts';

export const connectErrors = defineErrors({
  connect_no_providers: {
    status: 400,
    message:
      'There is no provider to offer in this connect session: the caller may connect none, or `providers` named none it may connect.',
  },
});

/**
 * What a hosted connect session sends to the app's return_url (and to the opener of its popup)
 * as `status=failed&error=<code>`, besides the consent callback's codes (consent.errors.ts), which
 * pass through unchanged.
 */
export const connectReturnErrors = defineReturnUrlErrors({
  session_expired: {
    message:
      'The connect session had expired or was already used (a provider was picked with it before) when the user opened or used its URL. Create a new session.',
  },
  connect_start_failed: {
    message:
      "The connection could not be started for the provider the user picked (its client secret or discovery document could not be read, or the session's connection_config no longer fits it). The broker log has the cause.",
  },
});
