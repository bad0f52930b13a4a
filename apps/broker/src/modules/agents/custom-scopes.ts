import type { Database } from '../../db/client.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import { agentErrors } from './agents.errors.ts';

/** Custom scopes (`/admin/v1/scopes`): names agents may be granted besides providers' own scopes. */
export function createCustomScopes(deps: {
  db: Database;
  audit: Pick<AuditService, 'record'>;
  now?: () => number;
}) {
  const k = deps.db.kysely;
  const now = deps.now ?? Date.now;
  return {
    async define(ctx: AuditContext, name: string, description: string) {
      try {
        await k.insertInto('custom_scopes').values({ name, description, created_at: now() }).execute();
      } catch (cause) {
        throw errorFrom(agentErrors, 'scope_exists', { cause, details: { name } });
      }
      await deps.audit.record(ctx, { action: 'scope.created', resourceType: 'scope', resourceId: name });
      return { name, description };
    },

    async list() {
      return k
        .selectFrom('custom_scopes')
        .select(['name', 'description'])
        .orderBy('name')
        .limit(1000)
        .execute();
    },

    async remove(ctx: AuditContext, name: string): Promise<void> {
      const result = await k.deleteFrom('custom_scopes').where('name', '=', name).executeTakeFirst();
      if (Number(result.numDeletedRows) !== 1) throw errorFrom(agentErrors, 'scope_not_found');
      await deps.audit.record(ctx, { action: 'scope.deleted', resourceType: 'scope', resourceId: name });
    },
  };
}

export type CustomScopes = ReturnType<typeof createCustomScopes>;
