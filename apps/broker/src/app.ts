import { randomUUID } from 'node:crypto';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import { validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { Container } from './container.ts';
import { commonError } from './errors/common.errors.ts';
import { installAuth } from './http/auth.ts';
import { installAuthFailureLimit } from './http/auth-failures.ts';
import { warnUntrustedForwarding } from './http/client-address.ts';
import { installCors } from './http/cors.ts';
import { installErrorHandling, sendError } from './http/error-handler.ts';
import { installJsonBodyParser } from './http/json-body.ts';
import { createAccessLog } from './http/logger.ts';
import { installOpenApi } from './http/openapi.ts';
import { installRateLimits } from './http/rate-limit.ts';
import { requestLoggerFactory } from './http/request-logger.ts';
import { serializerCompiler } from './http/serializer.ts';
import { installPublicAdminGuard, installSurfaces, type listenersFor } from './http/surfaces.ts';
import { applyServerTimeouts, installBodyDeadline } from './http/timeouts.ts';
import { installNulRefusal } from './http/unstorable-text.ts';

type Listeners = ReturnType<typeof listenersFor>;

import './http/types.ts';
import { adminKeysRoutes } from './modules/admin-keys/admin-keys.routes.ts';
import { agentsRoutes } from './modules/agents/agents.routes.ts';
import { agentMayUse } from './modules/agents/grants.ts';
import { oauthRoutes } from './modules/agents/oauth.routes.ts';
import { auditRoutes } from './modules/audit/audit.routes.ts';
import { catalogRoutes } from './modules/catalog/catalog.routes.ts';
import { connectRoutes } from './modules/connect/connect.routes.ts';
import { connectionsRoutes } from './modules/connections/connections.routes.ts';
import { captureRoutes } from './modules/consent/capture.routes.ts';
import { confirmRoutes } from './modules/consent/confirm.routes.ts';
import { consentRoutes } from './modules/consent/consent.routes.ts';
import { defaultAssetsDir } from './modules/console/console.assets.ts';
import { consoleRoutes } from './modules/console/console.routes.ts';
import { eventsRoutes } from './modules/events/events.routes.ts';
import { webhooksRoutes } from './modules/events/webhooks.routes.ts';
import { healthRoutes } from './modules/health/health.routes.ts';
import { mcpRoutes } from './modules/mcp/mcp.routes.ts';
import { createMcpIssuerAuth } from './modules/mcp/mcp-issuer.ts';
import { providersRoutes } from './modules/providers/providers.routes.ts';
import { mcpGatewayRoutes } from './modules/proxy/mcp-gateway.routes.ts';
import { createProxyMetrics } from './modules/proxy/proxy.metrics.ts';
import { proxyRoutes } from './modules/proxy/proxy.routes.ts';
import { sessionsRoutes } from './modules/token-exchange/sessions.routes.ts';
import { trustedIssuersRoutes } from './modules/token-exchange/trusted-issuers.routes.ts';
import { userSecretsRoutes } from './modules/user-secrets/user-secrets.routes.ts';
import { VERSION } from './version.ts';

const REQUEST_ID = /^[A-Za-z0-9._-]{8,128}$/;

type CompilersFactory = NonNullable<
  NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']
>;
/** Fastify's compiler factories, typed for Ajv's and fast-json-stringify's options (unused here). */
const zodCompilers = {
  buildValidator: () => validatorCompiler,
  buildSerializer: () => serializerCompiler,
} as unknown as CompilersFactory;

/** Builds the Fastify app without listening (tests call `inject`). */
export async function buildApp(
  container: Container,
  logger: Logger,
  /** The listeners of a role (http/surfaces.ts); default: one server, every route. */
  listeners?: Pick<Listeners, 'serverFactory'>,
): Promise<FastifyInstance> {
  const { config } = container;
  const app = Fastify({
    ...(listeners ? { serverFactory: listeners.serverFactory } : {}),
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.http.bodyLimit,
    // The client address comes from the socket unless the hop is a configured proxy.
    trustProxy: config.http.trustedProxies.length > 0 ? [...config.http.trustedProxies] : false,
    // Accept a caller's request id only when it is a plain token; otherwise make our own.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // One access-log line per request (written in onResponse below) instead of two.
    logController: new LogController({ requestIdLogLabel: 'request_id', disableRequestLogging: true }),
    // request.log becomes pino's child only when a request logs through it (request-logger.ts).
    childLoggerFactory: requestLoggerFactory,
    routerOptions: { maxParamLength: 256, ignoreTrailingSlash: true },
    return503OnClosing: true,
    // Schemas are zod's: validation by fastify-type-provider-zod, responses by http/serializer.ts.
    // Given as the factories too, Fastify never loads its default compilers (Ajv and
    // fast-json-stringify: ~10 ms and several MB at every start, for nothing). The setters below
    // stay: with the factories alone, every request cost ~5 µs more (measured on /health).
    schemaController: { compilersFactory: zodCompilers },
    // Errors raised while routing (before any hook runs) get the same envelope as the rest.
    frameworkErrors: (error, request, reply) => {
      const message =
        error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'A path parameter is too long.' : 'The URL is malformed.';
      return sendError(request, reply, commonError('invalid_request', { message }));
    },
  });
  // Headers, body and keep-alive timeouts (serve.ts sets the split-mode admin listener's).
  applyServerTimeouts(app.server, config.http.timeouts);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // First: a body that does not arrive is cut whatever the route and whoever sends it. The proxy
  // streams uploads: there the limit is on pauses, once the caller is authenticated.
  installBodyDeadline(app, config.http.timeouts, new Set(['/proxy/*']));
  // No NUL in a URL the broker reads (unstorable-text.ts); the proxies forward theirs as they are.
  installNulRefusal(app, new Set(['/proxy/*', '/mcp-gateway/:route']));
  // JSON only: a text/plain body gets 415 instead of reaching a schema as a string.
  app.removeContentTypeParser('text/plain');
  // Nested at most MAX_JSON_DEPTH levels, on every route: deeper bodies are refused before parsing.
  installJsonBodyParser(app);
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    reply.header('cache-control', 'no-store');
    reply.header('x-content-type-options', 'nosniff');
    done(null, payload);
  });
  installErrorHandling(app);
  const accessLog = createAccessLog(logger);
  app.addHook('onResponse', (request, reply, done) => {
    accessLog({
      requestId: request.id,
      method: request.method,
      url: request.url,
      ip: request.ip,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 100) / 100,
    });
    done();
  });
  container.metrics.install(app);
  // Before authentication: a route of the other surface is unknown here, not unauthorized.
  installSurfaces(app);
  await installCors(app, config.corsAllowedOrigins);
  warnUntrustedForwarding(app, config.http.trustedProxies);
  installAuthFailureLimit(app, container.rateLimiter, { envKeys: config.apiKeys });
  installAuth(app, {
    adminKeys: container.adminKeys,
    agents: container.agents,
    allowedCidrs: config.http.allowedCidrs,
  });
  installPublicAdminGuard(app, config.publicListenerAdminKeys);
  installRateLimits(app, container.rateLimiter);
  installOpenApi(app, config.http.baseUrl, VERSION);

  healthRoutes(app, {
    db: container.db,
    secrets: container.secrets,
    metrics: container.metrics,
    metricsPublic: config.http.metricsPublic,
    keyRing: container.keyRingCheck,
  });
  providersRoutes(app, { providers: container.providers, catalog: container.catalog });
  catalogRoutes(app, { catalog: container.catalog });
  adminKeysRoutes(app, { adminKeys: container.adminKeys });
  consoleRoutes(app, { assetsDir: defaultAssetsDir() });
  auditRoutes(app, { audit: container.audit });
  consentRoutes(app, { consent: container.consent, callbackPath: config.http.redirectPath });
  confirmRoutes(app, { consent: container.consent });
  captureRoutes(app, {
    capture: container.capture,
    formBodyLimit: Math.min(config.http.bodyLimit, 64 * 1024),
    brand: config.connect.brand,
  });
  connectionsRoutes(app, { connections: container.connections, providers: container.providers });
  connectRoutes(app, {
    connect: container.connect,
    brand: config.connect.brand,
  });
  webhooksRoutes(app, { webhooks: container.webhooks });
  eventsRoutes(app, { events: container.events });
  agentsRoutes(app, { agents: container.agents });
  userSecretsRoutes(app, { secrets: container.userSecrets, sessions: container.sessions });
  trustedIssuersRoutes(app, { trustedIssuers: container.trustedIssuers });
  sessionsRoutes(app, {
    sessions: container.sessions,
    agents: container.agents,
    scopes: container.customScopes,
    onBehalfOf: container.onBehalfOf,
    maxTtlSeconds: config.agentSessionMaxTtlSeconds,
  });
  oauthRoutes(app, {
    agents: container.agents,
    sessions: container.sessions,
    tokenExchange: container.tokenExchange,
    signingKeys: container.signingKeys,
    issuer: config.http.baseUrl,
    // The same limit as JSON bodies: an over-long field is then a 400 naming it, not a 413.
    formBodyLimit: config.http.bodyLimit,
  });
  const inBrokerProxy = proxyRoutes(app, {
    connections: container.connections,
    agents: container.agents,
    providers: container.providers,
    audit: container.audit,
    metrics: createProxyMetrics(container.metrics.registry),
    routes: config.proxy.routes,
    bodyLimit: config.proxy.bodyLimit,
    timeoutMs: config.proxy.timeoutMs,
    allowCidrs: config.egressAllowedCidrs,
  });
  mcpGatewayRoutes(app, { proxy: inBrokerProxy.options, routes: config.proxy.mcpGatewayRoutes });
  mcpRoutes(app, {
    connections: container.connections,
    userSecrets: container.userSecrets,
    audit: container.audit,
    mayUse: agentMayUse,
    defaultReturnUrl: `${config.http.baseUrl}/`,
    issuer: config.http.baseUrl,
    sessions: container.sessions,
    issuerAuth: createMcpIssuerAuth({
      entries: config.proxy.mcpIssuers,
      resource: config.http.baseUrl,
      verify: (token, options) => container.trustedIssuers.verifyUserToken(token, options),
      agents: container.agents,
    }),
  });
  return app;
}
