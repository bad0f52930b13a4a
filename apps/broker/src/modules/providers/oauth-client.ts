import * as oauth from 'oauth4webapi';
import { parseClientKey, toSigningKey } from './client-key.ts';
import type { Discovery } from './discovery.ts';
import { type IdTokenTrust, idTokenTrust } from './id-token-trust.ts';
import type { StoredProfile } from './providers.schemas.ts';
import { joinScopes, tokenAnswerQuirks, tolerantFetch, usesPkce } from './token-answer-quirks.ts';

/** Everything oauth4webapi needs to talk to one provider. */
export interface OAuthClient {
  readonly as: oauth.AuthorizationServer;
  readonly client: oauth.Client;
  readonly auth: oauth.ClientAuth;
  /**
   * Whether id_tokens are verified (against `as.issuer` and `as.jwks_uri`) or discarded: in
   * `discard` mode every token answer reaches oauth4webapi without its `id_token`.
   */
  readonly idTokens: IdTokenTrust;
  /**
   * Whether `as.issuer` is the provider's real issuer identifier. When it is only nominal (no
   * issuer configured, discovered or found), an RFC 9207 `iss` in the authorization response
   * cannot be compared with anything and is ignored (RFC 9207 §2.4).
   */
  readonly issuerKnown: boolean;
  /** Whether the authorization request and code exchange carry PKCE (all but `params.pkce: false`). */
  readonly pkce: boolean;
  /** Requested scopes joined as the provider reads them (`params.scope_separator`). */
  joinScopes(scopes: readonly string[]): string;
  /**
   * Options for every oauth4webapi request: timeout, loopback http in development, and a fetch
   * whose answers are put into the standard form first (token-answer-quirks.ts).
   */
  requestOptions(): {
    signal: AbortSignal;
    [oauth.allowInsecureRequests]: boolean;
    [oauth.customFetch]: typeof fetch;
    headers: Record<string, string>;
  };
}

/**
 * `params.token_request_format: json` (the original's setting, for providers whose token endpoint
 * reads JSON only): the form body oauth4webapi builds for the token endpoint (code exchange and
 * refresh, client credentials included when the client authenticates in the body) is sent as a JSON
 * object instead. Other requests (revocation, key sets) are left as they are.
 */
const jsonTokenRequests =
  (send: typeof fetch, endpoint: string | undefined): typeof fetch =>
  (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (
      endpoint === undefined ||
      init?.method !== 'POST' ||
      !(init.body instanceof URLSearchParams) ||
      new URL(url).href !== new URL(endpoint).href
    )
      return send(input, init);
    const headers = new Headers(init.headers);
    headers.set('content-type', 'application/json');
    return send(input, {
      ...init,
      headers: Object.fromEntries(headers.entries()),
      body: JSON.stringify(Object.fromEntries(init.body)),
    });
  };

/**
 * Builds the authorization-server metadata for a provider: from its discovery document when it
 * uses `issuer` + `enable_discovery` (explicit `auth_url`/`token_url` override the document), or
 * from its configured URLs. A provider without an issuer gets its token endpoint's origin as a
 * nominal issuer.
 *
 * id_tokens: a discovery provider's are verified as before. For the others, `openid: true` (a
 * consent that asks for `openid`) decides with id-token-trust.ts: verified against the issuer
 * configured or found there, or discarded; a discovery document that cannot be read right now
 * fails the call (`discovery_failed`) rather than lowering the check. Without it (refresh,
 * revocation, flows without `openid`) nothing is fetched and id_tokens are discarded: nothing
 * outside the consent reads them.
 */
export async function oauthClientFor(
  profile: StoredProfile,
  clientSecret: string | undefined,
  deps: {
    discovery: Pick<Discovery, 'get'>;
    allowInsecure: (url: URL) => boolean;
    timeoutMs: number;
    /**
     * The egress guard for identity-provider endpoints: every token, revocation and key-set request
     * (including the refresh's, which wraps this one) is resolved, checked and pinned.
     */
    fetch: typeof fetch;
  },
  options: { openid?: boolean } = {},
): Promise<OAuthClient> {
  let as: oauth.AuthorizationServer;
  let idTokens: IdTokenTrust;
  const jwksUri = typeof profile.params.jwks_uri === 'string' ? profile.params.jwks_uri : undefined;
  if (profile.enable_discovery && profile.issuer) {
    const meta = await deps.discovery.get(profile.issuer);
    as = {
      ...meta.raw,
      authorization_endpoint: profile.auth_url ?? meta.authorization_endpoint,
      token_endpoint: profile.token_url ?? meta.token_endpoint,
      ...(jwksUri === undefined ? {} : { jwks_uri: jwksUri }),
    };
    idTokens = { mode: 'verify', issuer: meta.issuer, source: 'discovery', jwksUri: as.jwks_uri };
  } else {
    idTokens = options.openid
      ? await idTokenTrust(profile, (issuer) => deps.discovery.get(issuer))
      : { mode: 'discard', tried: [] };
    as = {
      issuer:
        idTokens.mode === 'verify' ? idTokens.issuer : (profile.issuer ?? new URL(profile.token_url!).origin),
      authorization_endpoint: profile.auth_url!,
      token_endpoint: profile.token_url!,
      ...(idTokens.mode === 'verify' && idTokens.jwksUri !== undefined ? { jwks_uri: idTokens.jwksUri } : {}),
    };
  }
  const revocation = profile.params.revocation_endpoint;
  if (typeof revocation === 'string') as = { ...as, revocation_endpoint: revocation };
  const auth = clientAuthFor(profile, clientSecret ?? '', as);
  const insecure = deps.allowInsecure(new URL(as.token_endpoint ?? as.issuer));
  const guarded =
    profile.params.token_request_format === 'json'
      ? jsonTokenRequests(deps.fetch, as.token_endpoint)
      : deps.fetch;
  const send = tolerantFetch(guarded, {
    quirks: tokenAnswerQuirks(profile),
    tokenEndpoint: as.token_endpoint,
    dropIdToken: idTokens.mode === 'discard',
  });
  return {
    as,
    client: { client_id: profile.client_id! },
    auth,
    idTokens,
    issuerKnown: profile.issuer !== undefined || idTokens.mode === 'verify',
    pkce: usesPkce(profile),
    joinScopes: (scopes) => joinScopes(profile, scopes),
    requestOptions: () => ({
      signal: AbortSignal.timeout(deps.timeoutMs),
      [oauth.allowInsecureRequests]: insecure,
      [oauth.customFetch]: send,
      headers: { accept: 'application/json' },
    }),
  };
}

/**
 * The token-endpoint authentication the provider was registered with. For private_key_jwt the
 * assertion's audience is the issuer when the provider has one (RFC 7523bis), otherwise the token
 * endpoint URL (OIDC Core §9), which is what servers without an issuer identifier expect.
 */
function clientAuthFor(
  profile: StoredProfile,
  secret: string,
  as: oauth.AuthorizationServer,
): oauth.ClientAuth {
  switch (profile.auth_header) {
    case 'client_secret_basic':
      return oauth.ClientSecretBasic(secret);
    case 'client_secret_post':
      return oauth.ClientSecretPost(secret);
    case 'private_key_jwt': {
      const parsed = parseClientKey(secret);
      // Checked when the provider was registered; reaching this means the stored key was damaged.
      if (!parsed.ok) throw new Error(`provider ${profile.name}: stored client key is not usable`);
      const audience = profile.issuer === undefined ? as.token_endpoint : as.issuer;
      return oauth.PrivateKeyJwt(
        {
          key: toSigningKey(parsed.value),
          ...(parsed.value.kid === undefined ? {} : { kid: parsed.value.kid }),
        },
        {
          [oauth.modifyAssertion]: (_header, payload) => {
            if (audience !== undefined) payload.aud = audience;
          },
        },
      );
    }
  }
}
