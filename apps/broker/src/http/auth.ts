import type { FastifyInstance, FastifyRequest } from 'fastify';
import { commonError } from '../errors/common.errors.ts';
import type { AdminKeysService } from '../modules/admin-keys/admin-keys.service.ts';
import { cidrMatcher } from './client-address.ts';
import { sendError } from './error-handler.ts';
import type { AgentPrincipal, Principal } from './types.ts';

/** Takes the credential from `X-API-Key` or `Authorization: Bearer`; never from the query string. */
export function presentedCredential(request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-key'];
  if (typeof header === 'string' && header.length > 0) return header;
  const authorization = request.headers.authorization;
  if (authorization !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (match) return match[1];
  }
  return undefined;
}

/**
 * Authentication is on for every route unless the route declares `config: {auth: 'public'}`.
 * Runs in `onRequest`, before the body is read, so an unauthenticated caller costs no parsing.
 */
/** A JWT (three base64url parts): an agent access token rather than an API key. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export function installAuth(
  app: FastifyInstance,
  deps: {
    adminKeys: Pick<AdminKeysService, 'authenticate'>;
    agents: { authenticateToken(token: string): Promise<AgentPrincipal | null> };
    allowedCidrs: readonly string[];
  },
): void {
  const allowed = deps.allowedCidrs.length > 0 ? cidrMatcher(deps.allowedCidrs) : undefined;
  app.decorateRequest('principal', undefined);
  app.addHook('onRequest', async (request, reply) => {
    // Unknown routes fall through to the 404 handler; public routes need nothing.
    const routeAuth = request.routeOptions.config.auth ?? 'admin';
    if (request.is404 || routeAuth === 'public') return;
    const credential = presentedCredential(request);
    if (credential === undefined) return sendError(request, reply, commonError('unauthorized'));
    let principal: Principal | null;
    if (credential.length > 64 && JWT_SHAPE.test(credential)) {
      principal = await deps.agents.authenticateToken(credential);
      if (principal === null)
        return sendError(
          request,
          reply,
          commonError('unauthorized', {
            message:
              'The access token is not valid (expired, not issued by this broker, or its agent is deactivated).',
          }),
        );
      // Agents use the agent-facing routes only; ALLOWED_CIDRS guards the operators' surface.
      if (routeAuth !== 'agent')
        return sendError(
          request,
          reply,
          commonError('forbidden', { message: 'Agents may not use this route.' }),
        );
    } else {
      if (allowed !== undefined && !allowed(request.ip)) {
        return sendError(
          request,
          reply,
          commonError('address_not_allowed', { detail: `client ${request.ip}` }),
        );
      }
      principal = await deps.adminKeys.authenticate(credential);
      if (principal === null) {
        return sendError(
          request,
          reply,
          commonError('unauthorized', { message: 'The API key is not valid (unknown or revoked).' }),
        );
      }
    }
    request.principal = principal;
  });
}
