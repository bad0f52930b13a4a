/**
 * What an admin key may call (`requiredScope` in http/auth.ts says what each route needs):
 * `full` every route (the default, and what every key could do before scopes existed); `read` the
 * admin API's reads, never a credential; `agent` the agent-facing API only (`/v1/*`, the proxy,
 * user secrets), with an admin key's reach (every provider and workspace).
 */
export const ADMIN_SCOPES = ['full', 'read', 'agent'] as const;
export type AdminScope = (typeof ADMIN_SCOPES)[number];

/** Who is calling: an operator's admin key, or an agent's access token. */
export interface AdminPrincipal {
  readonly kind: 'admin';
  /** Stable id of the key: the database id, or `env:<name>` for keys from the environment. */
  readonly keyId: string;
  /** Human name of the key, used as the audit actor. */
  readonly name: string;
  /**
   * The key's scope. Every key that authenticates has one (`AdminKeysService.authenticate`); only
   * principals made in code (the broker CLI, tests), which never pass a route's check, lack it.
   */
  readonly scope?: AdminScope;
}

/** An agent authenticated by a broker-signed access token (`POST /oauth/token`). */
export interface AgentPrincipal {
  readonly kind: 'agent';
  /** The agent's row id (the token's `sub`). */
  readonly agentUuid: string;
  /** The agent's public name (`agent_id`), used as the audit actor. */
  readonly agentId: string;
  /** Scopes granted to this token. */
  readonly scopes: readonly string[];
  /** Provider ids and workspace ids the agent may touch; "*" means any. */
  readonly allowedProviders: readonly string[];
  readonly allowedWorkspaces: readonly string[];
  /** User secrets granted by name: "<user>/<zone>/<name>", "*" for the user. */
  readonly allowedSecrets: readonly string[];
}

export type Principal = AdminPrincipal | AgentPrincipal;

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
  }
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}
