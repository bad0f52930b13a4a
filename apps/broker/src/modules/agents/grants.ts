import type { AgentPrincipal } from '../../http/types.ts';
import type { ConnectionAccess } from '../connections/connections.service.ts';

/** Whether an agent may use connections of this workspace and provider ("*" allows any). */
export function agentMayUse(
  principal: AgentPrincipal,
  target: { workspace_id: string; provider_id: string },
): boolean {
  const providers = principal.allowedProviders;
  const workspaces = principal.allowedWorkspaces;
  return (
    (providers.includes('*') || providers.includes(target.provider_id)) &&
    (workspaces.includes('*') || workspaces.includes(target.workspace_id))
  );
}

/** Who may use which connection: admin keys any; agents what their grant names (else "not found"). */
export const principalAccess: ConnectionAccess = {
  canUse: (principal, connection) =>
    principal?.kind === 'admin' || (principal?.kind === 'agent' && agentMayUse(principal, connection)),
};
