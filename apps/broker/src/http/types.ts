import type { FastifyRequest } from 'fastify';
import type { AdminScope, AgentPrincipal, Principal } from '../auth/principal.ts';
import type { RateLimitBucket } from './rate-limit.ts';

/**
 * `public`: no credential. `admin`: an admin API key (the default for every route). `agent`: an
 * admin key or an agent access token (the agent-facing `/v1` routes, which check the grant).
 */
export type RouteAuth = 'public' | 'admin' | 'agent';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth;
    /**
     * The admin-key scope the route needs when it is not the default (http/auth.ts
     * `requiredScope`): e.g. `full` on an admin GET whose answer carries a credential.
     */
    scope?: AdminScope;
    /**
     * The route also takes OAuth client authentication (RFC 6749 §2.3: `Authorization: Basic`, or
     * a client secret or assertion in the form) and checks it itself: a request presenting no
     * X-API-Key or Bearer credential reaches it with `principal` undefined (`POST /oauth/introspect`).
     */
    clientAuth?: boolean;
    /**
     * The rate-limit bucket of a route whose path is configured (`REDIRECT_PATH`); the others are
     * named by path in rate-limit.ts `RATE_LIMITED_ROUTES`.
     */
    rateLimit?: RateLimitBucket;
    /**
     * A bearer token the broker's own verification refuses may still be the route's to accept
     * (`/mcp` takes trusted issuers' tokens, modules/mcp/mcp-issuer.ts): the agent principal it
     * stands for, or undefined to refuse as usual. It may throw the `NexusError` to answer with.
     */
    bearerFallback?: (token: string, request: FastifyRequest) => Promise<AgentPrincipal | undefined>;
  }
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}
