/**
 * A provider's aliases: other names it answers to. Names and aliases share one namespace, claimed
 * under the provider-name lock (providers.store.ts), so an alias never shadows a name.
 */
import { errorFrom } from '../../errors/nexus-error.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import type { ProviderReads } from './provider-reads.ts';
import { providerErrors } from './providers.errors.ts';
import type { ProvidersStore } from './providers.store.ts';

export function createProviderAliases(deps: {
  store: Pick<ProvidersStore, 'withNameLock' | 'aliasesOf' | 'deleteAlias'>;
  audit: Pick<AuditService, 'record'>;
  reads: Pick<ProviderReads, 'mustFind'>;
  now: () => number;
}) {
  const { store, audit, reads, now } = deps;
  return {
    async addAlias(ctx: AuditContext, id: string, alias: string): Promise<string[]> {
      const row = await reads.mustFind(id);
      await store.withNameLock(async (s) => {
        if ((await s.findLiveByName(alias)) || (await s.aliasExists(alias)))
          throw errorFrom(providerErrors, 'alias_taken', { details: { alias } });
        // The provider may have been deleted since it was read: its aliases would outlive it.
        if ((await s.findLive(row.id)) === undefined) throw errorFrom(providerErrors, 'provider_not_found');
        await s.insertAlias(alias, row.id, now());
      });
      await audit.record(ctx, {
        action: 'provider.alias_added',
        resourceType: 'provider',
        resourceId: row.id,
        details: { name: row.name, alias },
      });
      return store.aliasesOf(row.id);
    },

    async removeAlias(ctx: AuditContext, id: string, alias: string): Promise<void> {
      const row = await reads.mustFind(id);
      if (!(await store.deleteAlias(alias, row.id))) throw errorFrom(providerErrors, 'alias_not_found');
      await audit.record(ctx, {
        action: 'provider.alias_removed',
        resourceType: 'provider',
        resourceId: row.id,
        details: { name: row.name, alias },
      });
    },

    async aliases(id: string): Promise<string[]> {
      return store.aliasesOf((await reads.mustFind(id)).id);
    },
  };
}
