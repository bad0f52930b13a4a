import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AdminScope, AgentPrincipal, Principal } from '../auth/principal.ts';
import { cidrMatcher } from '../egress/cidr.ts';
import { commonError } from '../errors/common.errors.ts';
import { NexusError } from '../errors/nexus-error.ts';
import type { AdminKeysService } from '../modules/admin-keys/admin-keys.service.ts';
import { sendError } from './error-handler.ts';
import { quickHook } from './quick-hook.ts';
import type { RouteAuth } from './types.ts';

/**
 * The credential of `X-API-Key`, else of `Authorization: Bearer`; never from the query string.
 * Shared by REST (headers) and gRPC (metadata of the same names).
 */
export function credentialFrom(
  apiKey: string | undefined,
  authorization: string | undefined,
): string | undefined {
  if (typeof apiKey === 'string' && apiKey.length > 0) return apiKey;
  if (authorization !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (match) return match[1];
  }
  return undefined;
}

/** Takes the credential from `X-API-Key` or `Authorization: Bearer`; never from the query string. */
export function presentedCredential(request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-key'];
  return credentialFrom(typeof header === 'string' ? header : undefined, request.headers.authorization);
}

/** A JWT (three base64url parts): an agent access token rather than an API key. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * The admin-key scope a route needs, or undefined for a public route. The one rule: an agent route
 * needs `agent`; an admin route needs `read` for GET and HEAD and `full` for anything else; a route
 * whose default is wrong says so in its config (`config: {scope: 'full'}` on an admin GET whose
 * answer is a credential, such as `GET /connections/:id/token`).
 */
export function requiredScope(route: {
  method: string;
  auth: RouteAuth | undefined;
  scope?: AdminScope | undefined;
}): AdminScope | undefined {
  const auth = route.auth ?? 'admin';
  if (auth === 'public') return undefined;
  if (route.scope !== undefined) return route.scope;
  if (auth === 'agent') return 'agent';
  return route.method === 'GET' || route.method === 'HEAD' ? 'read' : 'full';
}

/** Whether a key of scope `held` may call a route that needs `needed`: `full` may call anything. */
export const scopeAllows = (held: AdminScope, needed: AdminScope): boolean =>
  held === 'full' || held === needed;

const SCOPE_REFUSAL: Record<AdminScope, string> = {
  full: 'This route needs an admin key of scope "full".',
  read: 'This route needs an admin key of scope "read" or "full".',
  agent: 'This route needs an admin key of scope "agent" or "full".',
};

export interface AuthDeps {
  adminKeys: Pick<AdminKeysService, 'authenticate'>;
  agents: { authenticateToken(token: string): Promise<AgentPrincipal | null> };
  allowedCidrs: readonly string[];
}

/**
 * Who a presented credential is, for a surface that needs `routeAuth` (`admin` or `agent`):
 * an agent access token (agent surfaces only), or an admin key (from `ALLOWED_CIDRS` when set)
 * whose scope allows `needed` (by default what any route of `routeAuth` needs: `agent`, or `full`
 * for admin). Throws the `NexusError` to answer with. The one verification path of REST and gRPC.
 */
export function credentialVerifier(
  deps: AuthDeps,
): (
  credential: string | undefined,
  ip: string,
  routeAuth: Exclude<RouteAuth, 'public'>,
  needed?: AdminScope,
) => Promise<Principal> {
  const allowed = deps.allowedCidrs.length > 0 ? cidrMatcher(deps.allowedCidrs) : undefined;
  return async (credential, ip, routeAuth, needed = routeAuth === 'agent' ? 'agent' : 'full') => {
    if (credential === undefined) throw commonError('unauthorized');
    if (credential.length > 64 && JWT_SHAPE.test(credential)) {
      const principal = await deps.agents.authenticateToken(credential);
      if (principal === null)
        throw commonError('unauthorized', {
          message:
            'The access token is not valid (expired, not issued by this broker, or its agent is deactivated).',
        });
      // Agents use the agent-facing routes only; ALLOWED_CIDRS guards the operators' surface.
      if (routeAuth !== 'agent')
        throw commonError('forbidden', { message: 'Agents may not use this route.' });
      return principal;
    }
    if (allowed !== undefined && !allowed(ip))
      throw commonError('address_not_allowed', { detail: `client ${ip}` });
    const principal = await deps.adminKeys.authenticate(credential);
    if (principal === null)
      throw commonError('unauthorized', { message: 'The API key is not valid (unknown or revoked).' });
    if (!scopeAllows(principal.scope, needed))
      throw commonError('forbidden', {
        message: `${SCOPE_REFUSAL[needed]} This key's scope is "${principal.scope}".`,
        detail: `admin key ${principal.keyId} (scope ${principal.scope}) needs ${needed}`,
      });
    return principal;
  };
}

/**
 * Authentication is on for every route unless the route declares `config: {auth: 'public'}`.
 * Runs in `onRequest`, before the body is read, so an unauthenticated caller costs no parsing.
 */
export function installAuth(app: FastifyInstance, deps: AuthDeps): void {
  const verify = credentialVerifier(deps);
  app.decorateRequest('principal', undefined);
  app.addHook(
    'onRequest',
    quickHook((request, reply) => {
      // Unknown routes fall through to the 404 handler; public routes need nothing.
      const { config } = request.routeOptions;
      const routeAuth = config.auth ?? 'admin';
      if (request.is404 || routeAuth === 'public') return undefined;
      const needed = requiredScope({ method: request.method, auth: routeAuth, scope: config.scope });
      const credential = presentedCredential(request);
      // The route authenticates the OAuth client in the request itself (after the body is parsed).
      if (credential === undefined && config.clientAuth === true) return undefined;
      const fallback = config.bearerFallback;
      const verified =
        fallback === undefined || credential === undefined || !JWT_SHAPE.test(credential)
          ? verify(credential, request.ip, routeAuth, needed)
          : verify(credential, request.ip, routeAuth, needed).catch(async (error: unknown) => {
              if (!(error instanceof NexusError) || error.code !== 'unauthorized') throw error;
              return (await fallback(credential, request)) ?? Promise.reject(error);
            });
      return verified.then(
        (principal) => {
          request.principal = principal;
        },
        (error: unknown) => {
          if (error instanceof NexusError) return sendError(request, reply, error);
          throw error;
        },
      );
    }),
  );
}
