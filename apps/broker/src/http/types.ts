/** Who is calling. Agents join this union when they land. */
export interface AdminPrincipal {
  readonly kind: 'admin';
  /** Stable id of the key: the database id, or `env:<name>` for keys from the environment. */
  readonly keyId: string;
  /** Human name of the key, used as the audit actor. */
  readonly name: string;
}

export type Principal = AdminPrincipal;

/** `public`: no credential. `admin`: an admin API key (the default for every route). */
export type RouteAuth = 'public' | 'admin';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth;
  }
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}
