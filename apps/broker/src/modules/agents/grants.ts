import type { AgentPrincipal, Principal } from '../../auth/principal.ts';
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

/**
 * Whether a caller may see a provider in the agent API's provider lists: admin keys see every one,
 * an agent only those its grant names ("*" any). A provider outside the grant is one the agent
 * could not use, and its name alone says which services this broker holds accounts for.
 */
export function principalMaySeeProvider(principal: Principal | undefined, providerId: string): boolean {
  if (principal?.kind === 'admin') return true;
  if (principal?.kind !== 'agent') return false;
  return principal.allowedProviders.includes('*') || principal.allowedProviders.includes(providerId);
}

/** Who may use which connection: admin keys any; agents what their grant names (else "not found"). */
export const principalAccess: ConnectionAccess = {
  canUse: (principal, connection) =>
    principal?.kind === 'admin' || (principal?.kind === 'agent' && agentMayUse(principal, connection)),
};
