/**
 * Who is calling, as every layer sees it: routes put it on the request (http/auth.ts), services
 * and the gRPC server take it as a parameter to decide what the caller may reach and to name the
 * audit actor. It is plain data: no Fastify, no HTTP.
 */

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
