import { defineErrors } from '../../errors/nexus-error.ts';

export const agentErrors = defineErrors({
  agent_not_found: { status: 404, message: 'No live agent with that id.' },
  agent_id_taken: { status: 409, message: 'A live agent already has that agent_id.' },
  invalid_agent: { status: 400, message: 'The agent definition is not valid; see details.' },
  agent_secret_not_found: { status: 404, message: 'No live client secret with that id for this agent.' },
  // OAuth token endpoint (RFC 6749 §5.2): the `error` values clients already understand.
  invalid_client: {
    status: 401,
    message: 'Client authentication failed (unknown agent, wrong secret or assertion, or deactivated agent).',
  },
  unsupported_grant_type: { status: 400, message: 'This grant type is not supported here.' },
  // Also raised by token-exchange/ (sessions and on-behalf-of), which names the gate in details.
  invalid_scope: {
    status: 400,
    message: 'A requested scope is not allowed: `details.gate` names the check that refused it.',
  },
  scope_exists: { status: 409, message: 'That custom scope is already defined.' },
  scope_not_found: { status: 404, message: 'No custom scope with that name.' },
});
