import * as z from 'zod';

/**
 * The request body field `connection_config` (request-connection, consent-spec, connect sessions):
 * values of the provider's per-connection parameters (decision 0015), bounded here and checked
 * against the provider's declarations in connection-config.ts.
 */
export const connectionConfig = z
  .record(
    z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/)
      .describe("A name of the provider's `params.connection_parameters`"),
    z.string().max(2048),
  )
  .refine((v) => Object.keys(v).length <= 20, { message: 'at most 20 entries' })
  .describe(
    "Values of the provider's per-connection parameters (`params.connection_parameters`: a Zendesk subdomain, a Microsoft tenant), each checked against the parameter's pattern; a parameter with a default may be left out. Stored with the connection and filled into the provider's URLs (consent, refresh, revocation, the credential proxy). A name the provider does not declare, a missing value or one that does not match is refused with 400 invalid_connection_config, and nothing is created.",
  );
