import * as z from 'zod';

/** request-connection's and connect sessions' `verify` field (decision 0017). */
export const verifyField = z
  .boolean()
  .optional()
  .describe(
    "Have the application confirm the user before the connection activates: after the provider's callback the browser goes to the verifier page (NEXUS_CONNECT_VERIFIER_URL) with a single-use `flow_id`, and the application's server calls POST /v1/connect/confirm. 400 `verifier_not_configured` without a verifier; absent: the operator's default (NEXUS_CONNECT_VERIFIER_REQUIRED).",
  );
