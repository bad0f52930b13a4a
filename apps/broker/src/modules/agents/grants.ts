import type { AgentPrincipal, Principal } from '../../auth/principal.ts';
import type { AgentsTable } from '../../db/schema.ts';
import type { ConnectionAccess } from '../connections/connections.service.ts';

/** Whether a grant list (`allowed_providers`, `allowed_workspaces`) names `item`, or is "*" (any). */
export const grantNames = (list: readonly string[], item: string): boolean =>
  list.includes('*') || list.includes(item);

/**
 * The scopes of an issued token or session (space-separated) that its agent still holds: an
 * operator who removes a scope from the agent takes it from what was already issued.
 */
export function scopesStillHeld(scope: unknown, agent: Pick<AgentsTable, 'allowed_scopes'>): string[] {
  if (typeof scope !== 'string' || scope === '') return [];
  const held = new Set(JSON.parse(agent.allowed_scopes) as string[]);
  return scope.split(' ').filter((s) => s !== '' && held.has(s));
}

/** Whether an agent may use connections of this workspace and provider ("*" allows any). */
export function agentMayUse(
  principal: Pick<AgentPrincipal, 'allowedProviders' | 'allowedWorkspaces'>,
  target: { workspace_id: string; provider_id: string },
): boolean {
  return (
    grantNames(principal.allowedProviders, target.provider_id) &&
    grantNames(principal.allowedWorkspaces, target.workspace_id)
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
  return grantNames(principal.allowedProviders, providerId);
}

/** Who may use which connection: admin keys any; agents what their grant names (else "not found"). */
export const principalAccess: ConnectionAccess = {
  canUse: (principal, connection) =>
    principal?.kind === 'admin' || (principal?.kind === 'agent' && agentMayUse(principal, connection)),
};
