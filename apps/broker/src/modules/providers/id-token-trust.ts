import { type DiscoveredMetadata, discoveryMayRecover } from './discovery.ts';
import type { StoredProfile } from './providers.schemas.ts';

/**
 * What the broker does with the id_token of a provider registered without `enable_discovery`
 * (issue #17). The original, with `openid` requested, looked for a discovery document at the
 * origin of `auth_url` or `token_url` and checked the id_token against whatever issuer the
 * unverified token itself named, so an attacker's token named the attacker's issuer. Here the
 * issuer is pinned before any token arrives, from the operator's own configuration:
 *
 * 1. `issuer` with `params.jwks_uri`: verified against those, nothing fetched;
 * 2. `issuer` alone: its discovery document (`{issuer}/.well-known/openid-configuration`);
 * 3. neither: the discovery document at the origin of `auth_url`, then of `token_url`; the
 *    document must name that very origin as its issuer (OIDC Discovery §4.3, oauth4webapi checks).
 *
 * A document found gives the issuer and key set only; the token endpoint stays the configured one,
 * so where the client secret goes never follows a document. When no document is found the
 * id_token cannot be verified: it is discarded from the token answer before anything reads it
 * (oauth-client.ts), never used, stored or returned. Every fetch goes through the discovery
 * module, hence through the egress guard.
 */
export type IdTokenTrust =
  | {
      readonly mode: 'verify';
      readonly issuer: string;
      /** Where the issuer was learnt: `discovery` (enable_discovery), `configured`, or a `hint`. */
      readonly source: 'discovery' | 'configured' | 'issuer' | 'hint';
      /** The key set; from the document, or `params.jwks_uri`. */
      readonly jwksUri: string | undefined;
      /** For a hint: the URL of the document that was used. */
      readonly foundAt?: string;
    }
  | {
      readonly mode: 'discard';
      /** The origins (or issuer) where no discovery document was found; empty when none was looked for. */
      readonly tried: readonly string[];
    };

/** Where to look for the discovery document of a provider without `enable_discovery`. */
export function discoveryCandidates(profile: StoredProfile): string[] {
  if (profile.issuer !== undefined) return [profile.issuer];
  const origins: string[] = [];
  for (const url of [profile.auth_url, profile.token_url]) {
    if (url === undefined) continue;
    const origin = new URL(url).origin;
    if (!origins.includes(origin)) origins.push(origin);
  }
  return origins;
}

/**
 * Decides how the id_token of a provider without `enable_discovery` is treated, with `lookup`
 * (the discovery module's cached `get`, or `refresh` at registration). A candidate that says there
 * is no document is passed over; one that may recover (unreachable, 5xx) makes the whole decision
 * wait: its error is thrown unless another candidate has a document. So a provider that cannot be
 * reached right now is never silently treated as one without a document.
 */
export async function idTokenTrust(
  profile: StoredProfile,
  lookup: (issuer: string) => Promise<DiscoveredMetadata>,
): Promise<IdTokenTrust> {
  const jwksUri = typeof profile.params.jwks_uri === 'string' ? profile.params.jwks_uri : undefined;
  if (profile.issuer !== undefined && jwksUri !== undefined)
    return { mode: 'verify', issuer: profile.issuer, source: 'configured', jwksUri };
  const candidates = discoveryCandidates(profile);
  let pending: unknown;
  for (const candidate of candidates) {
    let found: DiscoveredMetadata;
    try {
      found = await lookup(candidate);
    } catch (error) {
      if (discoveryMayRecover(error)) pending ??= error;
      continue;
    }
    // A document without a key set cannot verify anything.
    if (found.jwks_uri === undefined) continue;
    return profile.issuer !== undefined
      ? { mode: 'verify', issuer: found.issuer, source: 'issuer', jwksUri: found.jwks_uri }
      : {
          mode: 'verify',
          issuer: found.issuer,
          source: 'hint',
          jwksUri: found.jwks_uri,
          foundAt: `${candidate}/.well-known/openid-configuration`,
        };
  }
  if (pending !== undefined) throw pending;
  return { mode: 'discard', tried: candidates };
}

/** A registration warning: which of the two applies to this provider's id_tokens. */
export interface ProviderWarning {
  readonly code: 'id_token_verified' | 'id_token_discarded' | 'id_token_undecided';
  readonly message: string;
}

/**
 * The warning for a provider whose default scopes include `openid` but that is registered without
 * `enable_discovery`; undefined for any other provider.
 */
export async function openidWarning(
  profile: StoredProfile,
  lookup: (issuer: string) => Promise<DiscoveredMetadata>,
): Promise<ProviderWarning | undefined> {
  if (profile.auth_type !== 'oauth2' || profile.enable_discovery || !profile.scopes.includes('openid'))
    return undefined;
  let trust: IdTokenTrust;
  try {
    trust = await idTokenTrust(profile, lookup);
  } catch {
    return {
      code: 'id_token_undecided',
      message: `openid without enable_discovery: the discovery document at ${discoveryCandidates(profile).join(' or ')} could not be read now. Each consent looks again: id_tokens are verified against the issuer found there, or discarded if there is none; a consent started while it cannot be reached is refused.`,
    };
  }
  if (trust.mode === 'verify')
    return {
      code: 'id_token_verified',
      message:
        trust.source === 'configured'
          ? `openid without enable_discovery: id_tokens are verified against issuer ${trust.issuer} with the key set at params.jwks_uri.`
          : `openid without enable_discovery: id_tokens are verified against issuer ${trust.issuer} and its key set, from the discovery document at ${trust.foundAt ?? `${trust.issuer}/.well-known/openid-configuration`}. The configured auth_url and token_url are used as they are.`,
    };
  return {
    code: 'id_token_discarded',
    message: `openid without enable_discovery: no OpenID discovery document at ${trust.tried.join(' or ')}, so id_tokens cannot be verified. They are discarded (never used, stored or returned); connections work with the access token. To have them verified, set issuer (with enable_discovery, or with params.jwks_uri).`,
  };
}
