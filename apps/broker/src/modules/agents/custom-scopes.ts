import { errorFrom } from '../../errors/nexus-error.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import { agentErrors } from './agents.errors.ts';
import type { AgentsStore } from './agents.store.ts';

/** Custom scopes (`/admin/v1/scopes`): names agents may be granted besides providers' own scopes. */
export function createCustomScopes(deps: {
  store: Pick<AgentsStore, 'insertScope' | 'listScopes' | 'deleteScope' | 'scopeNamesAmong'>;
  audit: Pick<AuditService, 'record'>;
  now?: () => number;
}) {
  const { store } = deps;
  const now = deps.now ?? Date.now;
  return {
    async define(ctx: AuditContext, name: string, description: string) {
      try {
        await store.insertScope({ name, description, created_at: now() });
      } catch (cause) {
        throw errorFrom(agentErrors, 'scope_exists', { cause, details: { name } });
      }
      await deps.audit.record(ctx, { action: 'scope.created', resourceType: 'scope', resourceId: name });
      return { name, description };
    },

    list: () => store.listScopes(),

    async remove(ctx: AuditContext, name: string): Promise<void> {
      if (!(await store.deleteScope(name))) throw errorFrom(agentErrors, 'scope_not_found');
      await deps.audit.record(ctx, { action: 'scope.deleted', resourceType: 'scope', resourceId: name });
    },

    /** Which of `scopes` are custom scopes (the rest are providers' own scopes). */
    async namesAmong(scopes: readonly string[]): Promise<Set<string>> {
      return new Set(await store.scopeNamesAmong(scopes));
    },
  };
}

export type CustomScopes = ReturnType<typeof createCustomScopes>;
