/**
 * A template's expansion into an ordinary provider profile (decision 0015, its table), and the
 * merge with the fields a request gives: explicit fields win, `params` merge key by key, and
 * `params.template` always names the entry and version the profile was made from.
 */
import type { CatalogEntry } from './catalog.types.ts';

type Profile = Record<string, unknown>;

/** The profile an entry expands into, before any explicit field (no client id or secret). */
export function expandEntry(entry: CatalogEntry): Profile {
  const params: Profile = {};
  const profile: Profile = { name: entry.key, auth_type: entry.auth_type };
  const o = entry.oauth2;
  if (o !== undefined) {
    if (o.authorization_url !== undefined) profile.auth_url = o.authorization_url;
    if (o.token_url !== undefined) profile.token_url = o.token_url;
    if (o.issuer !== undefined) profile.issuer = o.issuer;
    if (o.discovery === true) profile.enable_discovery = true;
    profile.auth_header = o.token_auth_method;
    if (o.default_scopes !== undefined) profile.scopes = [...o.default_scopes];
    // Extra authorize-URL parameters are the string values of params, as they always were.
    Object.assign(params, o.authorize_params);
    if (o.revocation_url !== undefined) params.revocation_endpoint = o.revocation_url;
    if (o.userinfo_url !== undefined) profile.user_info_endpoint = o.userinfo_url;
    // PKCE is the default; a space joins scopes unless the entry says otherwise.
    if (!o.pkce) params.pkce = false;
    if (o.scope_separator !== undefined && o.scope_separator !== ' ')
      params.scope_separator = o.scope_separator;
    if (o.token_response !== undefined) params.token_response = structuredClone(o.token_response);
  }
  if (entry.parameters !== undefined) params.connection_parameters = structuredClone(entry.parameters);
  if (entry.learnt !== undefined) params.learnt = structuredClone(entry.learnt);
  const s = entry.static;
  if (s !== undefined) {
    params.credential_schema = structuredClone(s.capture);
    params.auth_strategy = structuredClone(s.strategy);
    if (s.help !== undefined) params.capture_help = s.help;
  }
  params.docs_url = entry.docs;
  if (entry.api !== undefined) profile.api_base_url = entry.api.base_url;
  if (entry.description !== undefined) profile.description = entry.description;
  if (entry.categories[0] !== undefined) profile.category = entry.categories[0];
  params.template = { key: entry.key, version: entry.version };
  profile.params = params;
  return profile;
}

const isObject = (v: unknown): v is Profile => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The expansion of `entry` under the fields of `given` (a profile as a request sends it, its
 * `template` key left out): each given field replaces the template's, `null` included (it clears
 * the field, as it does in any profile); given `params` are merged over the template's key by key.
 */
export function applyTemplate(entry: CatalogEntry, given: Profile): Profile {
  const expanded = expandEntry(entry);
  const { template: _, ...explicit } = given;
  const out: Profile = { ...expanded, ...explicit };
  const base = expanded.params as Profile;
  out.params = isObject(explicit.params)
    ? { ...base, ...explicit.params, template: base.template }
    : explicit.params === undefined || explicit.params === null
      ? base
      : explicit.params;
  return out;
}
