import type { OAuthClient } from '../providers/oauth-client.ts';
import type { StoredProfile } from '../providers/providers.schemas.ts';

/** A `params` flag: `true`, or the string `'true'` (profiles written by the original). */
export function truthy(value: unknown): boolean {
  return value === true || value === 'true';
}

/**
 * Extra parameters of the authorization-code exchange. The original sends the flow's `scope`
 * there by default (Microsoft Entra expects it; RFC 6749 §3.2 has servers ignore parameters they do
 * not know) and leaves it out with `params.skip_scope_on_exchange` (Salesforce refuses it).
 */
export function exchangeParameters(
  profile: StoredProfile,
  oc: Pick<OAuthClient, 'joinScopes'>,
  flowScopes: string,
): Record<string, string> {
  const scopes = JSON.parse(flowScopes) as string[];
  if (truthy(profile.params.skip_scope_on_exchange) || scopes.length === 0) return {};
  return { scope: oc.joinScopes(scopes) };
}

/** The callback's parameters without `iss`, for a provider whose issuer identifier is unknown. */
export function withoutIss(params: URLSearchParams): URLSearchParams {
  const copy = new URLSearchParams(params);
  copy.delete('iss');
  return copy;
}

/** The audit detail of a request's `metadata`: its top-level key names (at most 20), never a value. */
export function metadataKeys(metadata: unknown): { metadata_keys?: string[] } {
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) return {};
  return {
    metadata_keys: Object.keys(metadata)
      .slice(0, 20)
      .map((k) => k.slice(0, 64)),
  };
}
