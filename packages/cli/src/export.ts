/**
 * `nexus export`: today's configuration as a manifest. Secrets are never read (the broker does not
 * return them): a provider with a client secret gets `client_secret: ${<NAME>_CLIENT_SECRET}`, set in
 * the environment to send a new secret; unset, plan and apply keep the stored one. Applying the
 * export to the same broker changes nothing, variables set or not.
 */
import { Document } from 'yaml';
import { escapeVars as escapeText } from './manifest.ts';
import type { State } from './state.ts';
import { providerNames } from './state.ts';

export const secretVar = (provider: string) =>
  `${provider.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_CLIENT_SECRET`;

const PROFILE_ORDER = [
  'name',
  'auth_type',
  'auth_header',
  'client_id',
  'auth_url',
  'token_url',
  'issuer',
  'enable_discovery',
  'scopes',
  'params',
  'api_base_url',
  'user_info_endpoint',
  'description',
  'category',
] as const;

export function exportManifest(state: State): { yaml: string; variables: string[]; warnings: string[] } {
  const variables: string[] = [];
  const warnings: string[] = [];
  const names = providerNames(state);
  const data: Record<string, unknown> = {
    version: 1,
    scopes: state.scopes.map((s) => ({
      name: s.name,
      ...(s.description ? { description: s.description } : {}),
    })),
    trusted_issuers: state.issuers.map((t) => {
      const out: Record<string, unknown> = { issuer: t.issuer };
      if (t.jwks_uri) out.jwks_uri = t.jwks_uri;
      out.use_discovery = t.use_discovery;
      out.audience = t.audience;
      out.algorithms = t.algorithms;
      out.user_id_claim = t.user_id_claim;
      if (t.tenant_claim) out.tenant_claim = t.tenant_claim;
      out.permissions_claim = t.permissions_claim;
      if (t.clearance_claim) out.clearance_claim = t.clearance_claim;
      return out;
    }),
    providers: state.providers.map((p) => {
      const out: Record<string, unknown> = {};
      for (const f of PROFILE_ORDER) {
        const v = (p as unknown as Record<string, unknown>)[f];
        if (v !== undefined && v !== null) out[f] = v;
        if (f === 'client_id' && p.has_client_secret) {
          // Two provider names can map to one variable (my-app, my_app): each gets its own.
          let name = secretVar(p.name);
          for (let n = 2; variables.includes(name); n++)
            name = `${secretVar(p.name).replace(/_CLIENT_SECRET$/, '')}_${n}_CLIENT_SECRET`;
          variables.push(name);
          out.client_secret = `\${${name}}`;
        }
      }
      if (p.aliases.length > 0) out.aliases = [...p.aliases].sort();
      return out;
    }),
    agents: state.agents.map((a) => {
      const out: Record<string, unknown> = { agent_id: a.agent_id };
      if (a.description) out.description = a.description;
      out.allowed_scopes = a.allowed_scopes;
      out.allowed_providers = a.allowed_providers.map((id) => names.get(id) ?? id);
      out.allowed_workspaces = a.allowed_workspaces;
      if (a.allowed_secrets.length > 0) out.allowed_secrets = a.allowed_secrets;
      if (!a.active) out.active = false;
      if (a.jwks_uri) out.jwks_uri = a.jwks_uri;
      const jwks = (a as { jwks?: Record<string, unknown> | null }).jwks;
      if (jwks) out.jwks = jwks;
      return out;
    }),
  };
  const doc = new Document(escapeVars(data));
  doc.commentBefore =
    ' Exported by `nexus export`. Secrets are not included: set the variables named in\n' +
    ` \${...} to send them${variables.length > 0 ? ` (${variables.join(', ')})` : ''}; plan and apply keep the\n` +
    ' stored secret of a provider whose variable is not set.';
  return { yaml: doc.toString({ lineWidth: 0 }), variables, warnings };
}

/**
 * `${X}` or `$X` in exported text would be read back as a variable: write `$${X}`, `$$X` (client
 * secrets, which are placeholders, excepted; keys are never read as variables).
 */
function escapeVars(v: unknown, key?: string): unknown {
  if (typeof v === 'string') return key === 'client_secret' ? v : escapeText(v);
  if (Array.isArray(v)) return v.map((x) => escapeVars(x));
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, escapeVars(x, k)]));
  return v;
}
