import type { FastifyRequest } from 'fastify';
import { decodeJwt } from 'jose';
import type { AgentPrincipal } from '../../auth/principal.ts';
import { type McpIssuer, mcpIssuerFor } from '../../config/mcp-issuers.ts';
import { commonError } from '../../errors/common.errors.ts';
import type { AgentsService } from '../agents/agents.service.ts';
import type { UserTokenResult } from '../token-exchange/user-tokens.ts';
import { usablePerson } from './mcp.caller.ts';
import { MCP_SCOPE } from './mcp-resource.ts';

/** How long the in-process proxy token of such a caller lives at most (never past the user's token). */
const PROXY_TOKEN_TTL_S = 300;

/** A caller of `/mcp` that came with a trusted issuer's token: who, and through which issuer. */
export interface IssuerCaller {
  readonly issuer: string;
  readonly userId: string;
  /** Whether the token itself carries `mcp` (the user's gate; the principal's scopes are both gates). */
  readonly userHasMcp: boolean;
  /** An access token of the agent for the in-process proxy call (the user's token never travels). */
  readonly proxyToken: () => Promise<string>;
}

/**
 * `/mcp` for an MCP client acting for a person with the developer's identity provider as its
 * authorization server: the bearer token is the person's, from a trusted issuer listed in
 * NEXUS_MCP_ISSUERS, which names the agent such callers act as (decision 0016). The token is
 * verified as on-behalf-of verifies users' tokens (the issuer's keys, algorithms, issuer, expiry),
 * except that its audience must be this broker as a resource (RFC 8707), not the issuer's
 * on-behalf-of audience. The acting user is the mapped user id; the principal's scopes are the
 * agent's `allowed_scopes` the user also holds (the token's `scope` and the issuer's permissions
 * claim). Whatever is wrong answers 401 (invalid_token), as for any other token `/mcp` refuses.
 */
export function createMcpIssuerAuth(deps: {
  entries: readonly McpIssuer[];
  /** The resource (BASE_URL): the audience the token must carry. */
  resource: string;
  verify: (token: string, options: { audience: string }) => Promise<UserTokenResult>;
  agents: Pick<AgentsService, 'actAs'>;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;
  const callers = new WeakMap<FastifyRequest, IssuerCaller>();
  const refused = (message: string) => commonError('unauthorized', { message });

  return {
    /** The route's `bearerFallback` (http/types.ts): the agent principal, or undefined to refuse. */
    async authenticate(token: string, request: FastifyRequest): Promise<AgentPrincipal | undefined> {
      if (deps.entries.length === 0) return undefined;
      let iss: unknown;
      try {
        iss = decodeJwt(token).iss;
      } catch {
        return undefined;
      }
      // An issuer not listed for MCP (trusted for on-behalf-of or not) is refused as any unknown token.
      if (!deps.entries.some((e) => e.issuer === iss)) return undefined;
      const user = await deps.verify(token, { audience: deps.resource });
      if (!user.ok)
        throw refused(
          user.reason === 'wrong_audience'
            ? `The token is not issued for this resource: ask ${String(iss)} for a token with resource=${deps.resource} (RFC 8707).`
            : `The token from ${String(iss)} is not valid here (${user.reason}).`,
        );
      // A grant reads `*` as every user: a person whose id it is would act for everyone.
      if (!usablePerson(user.userId))
        throw refused(
          `The token's user id (${JSON.stringify(user.userId)}) names no single person: it cannot be acted for here.`,
        );
      const entry = mcpIssuerFor(deps.entries, user.issuer, user.clientId);
      if (entry === undefined)
        throw refused(
          `The token's client is not one this broker accepts from ${user.issuer} (NEXUS_MCP_ISSUERS).`,
        );
      const userScopes = [...new Set([...user.scopes, ...user.permissions])];
      const ttl = Math.min(PROXY_TOKEN_TTL_S, Math.floor((user.expiresAt - now()) / 1000));
      const acting = await deps.agents.actAs(entry.agentId, userScopes, ttl);
      if (acting === undefined)
        throw refused(`The agent ${user.issuer}'s MCP clients act as is deactivated or gone.`);
      callers.set(request, {
        issuer: user.issuer,
        userId: user.userId,
        userHasMcp: userScopes.includes(MCP_SCOPE),
        proxyToken: acting.token,
      });
      return acting.principal;
    },
    /** The trusted-issuer caller of a request, when it came with such a token. */
    callerOf(request: FastifyRequest): IssuerCaller | undefined {
      return callers.get(request);
    },
    /** The issuers listed for MCP, for the resource metadata's `authorization_servers`. */
    issuers(): string[] {
      return [...new Set(deps.entries.map((e) => e.issuer))];
    },
  };
}

export type McpIssuerAuth = ReturnType<typeof createMcpIssuerAuth>;
