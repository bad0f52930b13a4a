import * as oauth from 'oauth4webapi';
import { forConnection, parseConnectionConfig } from '../providers/connection-params.ts';
import type { OAuthClient } from '../providers/oauth-client.ts';
import type { StoredProfile } from '../providers/providers.schemas.ts';
import type { ProvidersService } from '../providers/providers.service.ts';
import type { ConnectionWithProvider } from './connections.store.ts';
import type { StoredCredentials } from './connections.types.ts';
import type { IssuedTokens } from './refresh-record.ts';

/**
 * RFC 7009 revocation at the provider, for `revoke`: the refresh token (which ends the grant at
 * most providers), then the access token, at the revocation endpoint of this connection (its
 * provider's URL placeholders filled with its `connection_config`, decision 0015). Answers whether
 * the provider has an endpoint and accepted both; throws when a call fails.
 */
export function createUpstreamRevoker(deps: {
  providers: Pick<ProvidersService, 'loadForUse'>;
  oauthClient: (profile: StoredProfile, clientSecret: string | undefined) => Promise<OAuthClient>;
  credentialsOf: (row: ConnectionWithProvider) => Promise<StoredCredentials>;
}) {
  return async function revokeUpstream(
    row: ConnectionWithProvider,
    /** Tokens to revoke instead of the stored ones: a refresh's answer that could not be kept. */
    issued?: IssuedTokens,
  ): Promise<boolean> {
    let tokens: IssuedTokens | undefined = issued;
    if (tokens === undefined) {
      const creds = await deps.credentialsOf(row);
      if (creds.kind !== 'oauth2') return false;
      tokens = creds;
    }
    const { profile, clientSecret } = await deps.providers.loadForUse(row.provider_id);
    const filled = forConnection(profile, parseConnectionConfig(row.connection_config));
    return revokeTokens(await deps.oauthClient(filled, clientSecret), tokens);
  };
}

/**
 * RFC 7009 at `oc`'s revocation endpoint: the refresh token first, then the access token. False
 * when the provider has no endpoint; throws when a call fails. Also used by consent/ for a grant
 * whose consent was confirmed for another user (decision 0017).
 */
export async function revokeTokens(oc: OAuthClient, tokens: IssuedTokens): Promise<boolean> {
  if (oc.as.revocation_endpoint === undefined) return false;
  for (const [token, hint] of [
    [tokens.refresh_token, 'refresh_token'],
    [tokens.access_token, 'access_token'],
  ] as const) {
    if (token === undefined) continue;
    const response = await oauth.revocationRequest(oc.as, oc.client, oc.auth, token, {
      ...oc.requestOptions(),
      additionalParameters: { token_type_hint: hint },
    });
    await oauth.processRevocationResponse(response);
  }
  return true;
}
