import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { AdminScope } from '../auth/principal.ts';
import { commonError } from '../errors/common.errors.ts';
import { sendError } from './error-handler.ts';
import type { RouteAuth } from './types.ts';

/**
 * Two surfaces, one route table. The public surface is what agents, users' browsers and providers
 * reach: the agent API (`/v1/*`, user secrets), the OAuth callback, the hosted connect and capture
 * pages, `/oauth/*`, `/.well-known/*`, the credential proxy and `/health`. The admin surface is the
 * rest: providers, connections admin, agents, scopes, trusted issuers, webhooks, events, audit,
 * `/metrics`, `/ready`, the OpenAPI document and the operator console (`/console`).
 *
 * A listener serves one surface or both; a route asked for on a listener that does not serve its
 * surface answers exactly like an unknown route (404 `route_not_found`).
 */
export type Surface = 'public' | 'admin';
export type ListenerSurface = Surface | 'all';

/** Listed by path: operational routes whose `auth` would otherwise place them on the public surface. */
const ADMIN_PATHS = new Set(['/metrics', '/ready', '/openapi.json']);

/** The surface a route belongs to ('both' for /health), from its path and its authentication. */
export function surfaceOf(url: string, auth: RouteAuth | undefined): Surface | 'both' {
  // Liveness, and the page that says where the API reference is, answer on every listener.
  if (url === '/health' || url === '/') return 'both';
  if (ADMIN_PATHS.has(url) || url === '/docs' || url.startsWith('/docs/')) return 'admin';
  // The operator console calls the admin API: it is served where that API is.
  if (url === '/console' || url.startsWith('/console/')) return 'admin';
  return auth === 'public' || auth === 'agent' ? 'public' : 'admin';
}

const SURFACE = Symbol('nexus.surface');
type Tagged = IncomingMessage & { [SURFACE]?: ListenerSurface };

/** A request handler that marks each request with the surface of the listener it came in on. */
export function tagged(
  surface: ListenerSurface,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    (req as Tagged)[SURFACE] = surface;
    handler(req, res);
  };
}

/** A route as registered: its method, path, authentication and declared admin-key scope. */
export interface RouteEntry {
  readonly method: string;
  readonly url: string;
  readonly auth: RouteAuth | undefined;
  readonly scope: AdminScope | undefined;
}

const ROUTES = new WeakMap<FastifyInstance, RouteEntry[]>();

/** Every route of an app (method, path, auth, scope), as registered: what split mode divides. */
export function routeTable(app: FastifyInstance): readonly RouteEntry[] {
  return ROUTES.get(app) ?? [];
}

/**
 * Refuses, as unknown, a route of the other surface. Installed before authentication, and before
 * any route is registered (it records the route table).
 */
export function installSurfaces(app: FastifyInstance): void {
  const routes: RouteEntry[] = [];
  ROUTES.set(app, routes);
  app.addHook('onRoute', (route) => {
    // Read when asked: a hook that runs after this one may still set `auth`.
    const config = () => route.config as { auth?: RouteAuth; scope?: AdminScope } | undefined;
    for (const method of [route.method].flat())
      routes.push({
        method,
        url: route.url,
        get auth() {
          return config()?.auth;
        },
        get scope() {
          return config()?.scope;
        },
      });
  });
  app.addHook('onRequest', (request, reply, done) => {
    const listener = (request.raw as Tagged)[SURFACE];
    if (listener === undefined || listener === 'all' || request.is404) return done();
    const surface = surfaceOf(request.routeOptions.url ?? '', request.routeOptions.config.auth);
    if (surface !== 'both' && surface !== listener) sendError(request, reply, commonError('route_not_found'));
    done();
  });
}

/**
 * On a listener that serves only the public surface (split mode's public port, the gateway role),
 * admin keys are refused unless the operator allows them: an admin key is an operator's credential,
 * and the public surface is where agents and the internet reach the broker. Installed after
 * authentication.
 */
export function installPublicAdminGuard(app: FastifyInstance, allowAdminKeys: boolean): void {
  if (allowAdminKeys) return;
  app.addHook('onRequest', (request, reply, done) => {
    if ((request.raw as Tagged)[SURFACE] !== 'public' || request.principal?.kind !== 'admin') return done();
    sendError(
      request,
      reply,
      commonError('forbidden', {
        message:
          'Admin keys are not accepted on the public listener: use an agent token here, or the admin listener (set PUBLIC_LISTENER_ADMIN_KEYS=true to allow them).',
      }),
    );
    done();
  });
}

/**
 * The HTTP servers of a role: `all` without an admin port is the embedded default (one listener,
 * everything); `all` with one splits public and admin; `gateway` serves only the public surface
 * and `broker` only the admin one, each on the main listener.
 */
export type Role = 'all' | 'gateway' | 'broker';

export function listenersFor(role: Role, split: boolean) {
  const main: ListenerSurface =
    role === 'gateway' ? 'public' : role === 'broker' ? 'admin' : split ? 'public' : 'all';
  let admin: http.Server | undefined;
  return {
    main,
    /** For Fastify's `serverFactory`: the main server, and (split) the admin one beside it. */
    serverFactory(handler: (req: IncomingMessage, res: ServerResponse) => void): http.Server {
      if (role === 'all' && split) admin = http.createServer(tagged('admin', handler));
      return http.createServer(tagged(main, handler));
    },
    get adminServer() {
      return admin;
    },
  };
}
