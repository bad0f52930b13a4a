/**
 * What the broker holds today, read in full for planning and export: every live provider (with
 * its aliases and version), agent, custom scope and trusted issuer.
 */
import type { Agent, Api, CustomScope, Provider, TrustedIssuer } from './api.ts';
import type { CatalogState } from './plan-catalog.ts';

export interface State {
  scopes: CustomScope[];
  issuers: TrustedIssuer[];
  providers: Provider[];
  agents: Agent[];
  /** The provider catalogue, when the plan needs it (plan-catalog.ts `readCatalog`). */
  catalog?: CatalogState | undefined;
}

/** Reads everything, a few requests at a time. */
export async function readState(api: Api): Promise<State> {
  const [summaries, agents, scopes, issuers] = await Promise.all([
    api.listProviders(),
    api.listAgents(),
    api.listScopes(),
    api.listTrustedIssuers(),
  ]);
  const providers: Provider[] = [];
  for (let i = 0; i < summaries.length; i += 8) {
    providers.push(...(await Promise.all(summaries.slice(i, i + 8).map((s) => api.getProvider(s.id)))));
  }
  providers.sort((a, b) => a.name.localeCompare(b.name));
  agents.sort((a, b) => a.agent_id.localeCompare(b.agent_id));
  issuers.sort((a, b) => a.issuer.localeCompare(b.issuer));
  return { scopes, issuers, providers, agents };
}

/** Maps provider ids (as agents store them) and names/aliases to the provider's name. */
export function providerNames(state: State): Map<string, string> {
  const names = new Map<string, string>();
  for (const p of state.providers) {
    names.set(p.id, p.name);
    names.set(p.name, p.name);
    for (const a of p.aliases) names.set(a, p.name);
  }
  return names;
}
