import { defineErrors } from '../../errors/nexus-error.ts';

export const mcpErrors = defineErrors({
  insufficient_scope: {
    status: 403,
    message:
      'The access token lacks the scope this resource needs (RFC 6750 §3.1): ask for it at the token endpoint. WWW-Authenticate names the scope and the resource metadata.',
  },
});
