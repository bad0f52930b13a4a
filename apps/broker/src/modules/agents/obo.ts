/** The outcome of the two on-behalf-of gates; `refused` lists the scopes that failed the named gate. */
export type OboDecision =
  | { allowed: true }
  | { allowed: false; gate: 'user_permissions' | 'agent_scopes'; refused: string[] };

/**
 * On-behalf-of needs both gates (issue #6): every requested scope must be among the user's
 * permissions (from their verified token) AND among the agent's `allowed_scopes`. Comparison is
 * exact; there are no wildcards. The user's gate is checked first, so when both fail the answer
 * names `user_permissions`. An empty request passes both gates.
 */
export function oboDecision(input: {
  agentAllowedScopes: string[];
  userPermissions: string[];
  requested: string[];
}): OboDecision {
  const requested = [...new Set(input.requested)];
  const user = new Set(input.userPermissions);
  const refusedByUser = requested.filter((scope) => !user.has(scope));
  if (refusedByUser.length > 0) return { allowed: false, gate: 'user_permissions', refused: refusedByUser };
  const agent = new Set(input.agentAllowedScopes);
  const refusedByAgent = requested.filter((scope) => !agent.has(scope));
  if (refusedByAgent.length > 0) return { allowed: false, gate: 'agent_scopes', refused: refusedByAgent };
  return { allowed: true };
}
