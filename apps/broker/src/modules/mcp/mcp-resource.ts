/**
 * `/mcp` as an OAuth-protected resource (MCP authorization, RFC 9728, RFC 6750 §3): what a client
 * discovers, and the challenges it is answered with. The resource is the broker itself (its issuer
 * URL): the agent access tokens it issues carry that audience, and `/mcp` is one of its endpoints.
 */

/** The scope an access token needs for `/mcp`. */
export const MCP_SCOPE = 'mcp';
export const METADATA_PATH = '/.well-known/oauth-protected-resource';

/**
 * RFC 9728 §2: the protected-resource metadata. The authorization servers are the broker (agents'
 * client credentials) and the trusted issuers whose users' tokens `/mcp` takes (NEXUS_MCP_ISSUERS).
 */
export function protectedResourceMetadata(issuer: string, mcpIssuers: readonly string[] = []) {
  return {
    resource: issuer,
    authorization_servers: [...new Set([issuer, ...mcpIssuers])],
    bearer_methods_supported: ['header'],
    scopes_supported: [MCP_SCOPE],
    resource_name: 'Nexus',
  };
}

/**
 * The `WWW-Authenticate` value of a refusal (RFC 6750 §3, RFC 9728 §5.1): every 401 names the
 * resource metadata (and `invalid_token` when a token was presented); a 403 for a missing scope
 * names the scope.
 */
export function challenge(
  issuer: string,
  refusal: 'no_token' | 'invalid_token' | 'insufficient_scope',
): string {
  const metadata = `resource_metadata="${issuer}${METADATA_PATH}"`;
  if (refusal === 'insufficient_scope')
    return `Bearer error="insufficient_scope", scope="${MCP_SCOPE}", ${metadata}`;
  if (refusal === 'invalid_token') return `Bearer error="invalid_token", scope="${MCP_SCOPE}", ${metadata}`;
  return `Bearer scope="${MCP_SCOPE}", ${metadata}`;
}
