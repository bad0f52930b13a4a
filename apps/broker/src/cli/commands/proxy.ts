import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as z from 'zod';
import { parseProxyRoutes } from '../../config/proxy-routes.ts';
import { NexusError } from '../../errors/nexus-error.ts';
import { createLogger } from '../../http/logger.ts';
import { createProxy, routeOf } from '../../modules/proxy/proxy.ts';
import {
  callerOf,
  createRemoteCredentials,
  type RemoteCaller,
} from '../../modules/proxy/remote-credentials.ts';
import { CliExit } from '../context.ts';
import { credentialVar } from '../credential-env.ts';

const list = z
  .string()
  .max(16384)
  .transform((s) =>
    s
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean),
  );

/** The standalone proxy's environment (docs/proxy.md), named like the original sidecar's. */
export const proxyEnvSchema = z.object({
  NEXUS_URL: z
    .url({ protocol: /^https?$/ })
    .optional()
    .describe('The broker (`BROKER_BASE_URL` is accepted too).'),
  BROKER_BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
  NEXUS_CLIENT_ID: credentialVar(200).describe("The proxy's own agent id."),
  NEXUS_CLIENT_SECRET: credentialVar(512).describe("The proxy's own agent secret."),
  NEXUS_API_KEY: credentialVar(512).describe('Instead of an agent: an admin API key.'),
  // Required, but checked after parsing so that its absence is listed with every other problem.
  NEXUS_ROUTES: list
    .default([])
    .describe('`name=https://base-url,…`; the name is the provider whose connections the route serves.'),
  TOKEN_CACHE_TTL: z.coerce
    .number()
    .int()
    .min(0)
    .max(3600)
    .default(60)
    .describe('Seconds a token is cached.'),
  REQUEST_BODY_LIMIT: z.coerce
    .number()
    .int()
    .min(1024)
    .max(5 * 1024 ** 3)
    .default(10 * 1024 * 1024),
  PROXY_HOST: z.string().min(1).max(255).default('127.0.0.1'),
  PROXY_PORT: z.coerce.number().int().min(0).max(65535).default(8081),
  PROXY_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(600).default(30),
  NEXUS_EGRESS_ALLOWED_CIDRS: list.default([]),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  NEXUS_ENV: z.enum(['development', 'production', 'test']).optional(),
});

type ProxyEnv = z.infer<typeof proxyEnvSchema>;

/** Every problem of the proxy's environment at once, as `nexus serve` lists its own (issue #24). */
function configure(env: NodeJS.ProcessEnv) {
  const problems: string[] = [];
  const parsed: Record<string, unknown> = {};
  // "required" is said only of what is absent: a bad value has its own problem above.
  const given = (...names: string[]) => names.some((n) => env[n] !== undefined && env[n] !== '');
  // Each variable on its own, so that one bad value hides neither the others nor the checks below.
  for (const [name, schema] of Object.entries(proxyEnvSchema.shape)) {
    const raw = env[name] === '' ? undefined : env[name]; // empty means unset, as deploy tools write it
    const result = (schema as z.ZodType).safeParse(raw);
    if (result.success) parsed[name] = result.data;
    else problems.push(`${name}: ${result.error.issues[0]?.message ?? 'invalid'}`);
  }
  const e = { ...parsed, NEXUS_ROUTES: parsed.NEXUS_ROUTES ?? [] } as ProxyEnv;
  const broker = e.NEXUS_URL ?? e.BROKER_BASE_URL;
  if (!given('NEXUS_URL', 'BROKER_BASE_URL'))
    problems.push('NEXUS_URL: required, the broker the proxy gets credentials from');
  const own =
    e.NEXUS_CLIENT_ID !== undefined && e.NEXUS_CLIENT_SECRET !== undefined
      ? { clientId: e.NEXUS_CLIENT_ID, clientSecret: e.NEXUS_CLIENT_SECRET }
      : e.NEXUS_API_KEY !== undefined
        ? { apiKey: e.NEXUS_API_KEY }
        : undefined;
  if (!given('NEXUS_API_KEY') && !(given('NEXUS_CLIENT_ID') && given('NEXUS_CLIENT_SECRET')))
    problems.push(
      "NEXUS_CLIENT_ID and NEXUS_CLIENT_SECRET: required, the proxy's own agent credential (or NEXUS_API_KEY)",
    );
  const routes = parseProxyRoutes('NEXUS_ROUTES', e.NEXUS_ROUTES, problems, {
    requireHttps: e.NEXUS_ENV === 'production',
  });
  if (!given('NEXUS_ROUTES')) problems.push('NEXUS_ROUTES: required, e.g. github=https://api.github.com');
  if (problems.length > 0)
    throw new CliExit(`nexus proxy: configuration errors:\n  ${problems.join('\n  ')}`, 2);
  return { ...e, brokerUrl: new URL(broker!), own: own!, routes };
}

function sendError(res: ServerResponse, requestId: string, error: unknown): void {
  const e =
    error instanceof NexusError && error.expose
      ? error
      : new NexusError(
          'internal_error',
          500,
          'Internal error. The request id identifies it in the proxy logs.',
        );
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res
    .writeHead(e.status, {
      'content-type': 'application/json',
      'x-request-id': requestId,
      'cache-control': 'no-store',
    })
    .end(
      JSON.stringify({
        error: e.code,
        message: e.message,
        ...(e.details === undefined ? {} : { details: e.details }),
      }),
    );
}

/**
 * `nexus proxy`: the credential proxy as its own process, for agents in their own network. Callers
 * authenticate as to the broker; credentials come from the broker with the proxy's agent credential.
 */
export async function proxyCommand(env: NodeJS.ProcessEnv): Promise<number> {
  const config = configure(env);
  const logger = createLogger(config.LOG_LEVEL);
  const credentials = createRemoteCredentials({
    brokerUrl: config.brokerUrl,
    own: config.own,
    cacheTtlMs: config.TOKEN_CACHE_TTL * 1000,
    timeoutMs: config.PROXY_TIMEOUT_SECONDS * 1000,
  });
  const proxy = createProxy<RemoteCaller>({
    routes: async (name) => {
      const base = config.routes.get(name);
      return base === undefined ? undefined : { baseUrl: base, providerName: name };
    },
    credentials,
    // An answer still streaming ends once the broker refuses the caller that connection (as the
    // in-broker proxy's does; 2026-12-08: it went on for as long as the upstream sent).
    stillAllowed: credentials.stillAllowed,
    allowCidrs: config.NEXUS_EGRESS_ALLOWED_CIDRS,
    bodyLimit: config.REQUEST_BODY_LIMIT,
    timeoutMs: config.PROXY_TIMEOUT_SECONDS * 1000,
  });

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const requestId = randomUUID();
    const started = performance.now();
    res.once('close', () =>
      // Never the query string (it may carry credentials for query_param routes) or headers.
      logger.info(
        {
          request_id: requestId,
          method: req.method,
          status: res.statusCode,
          ms: Math.round(performance.now() - started),
        },
        'proxied',
      ),
    );
    if (req.url === '/_nexus/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    void (async () => {
      const { route, path, search, mount } = routeOf(req.url ?? '/', req.headers);
      const hasBody =
        req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
      const result = await proxy.forward({
        caller: callerOf(req.headers),
        route,
        path,
        search,
        publicBase: mount,
        method: req.method ?? 'GET',
        headers: req.headers,
        body: hasBody ? req : undefined,
      });
      res.writeHead(result.status, { ...result.headers, 'x-request-id': requestId });
      // pipe, not stream.pipeline: the same ends (an upstream failure cuts the answer, a caller that
      // leaves stops the upstream body) without pipeline's per-call AbortController, whose abort
      // builds a DOMException with a stack trace on every request (~25 µs here).
      const body = result.body;
      let callerLeft = false;
      const leave = () => {
        callerLeft = true;
        if (!body.readableEnded) body.destroy();
      };
      body.once('error', (error) => {
        // Destroying the body because the caller left errors it too: that is not the upstream's doing.
        if (!callerLeft) logger.warn({ request_id: requestId, err: error }, 'upstream answer cut');
        res.destroy();
      });
      // A caller that left while the upstream was still answering: nothing to pipe to.
      if (res.destroyed) return leave();
      res.once('close', leave);
      body.pipe(res);
    })().catch((error: unknown) => {
      if (!(error instanceof NexusError))
        logger.error({ request_id: requestId, err: error }, 'proxy failure');
      sendError(res, requestId, error);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.PROXY_PORT, config.PROXY_HOST, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  logger.info(
    {
      url: `http://${config.PROXY_HOST}:${port}`,
      routes: [...config.routes.keys()],
      broker: config.brokerUrl.origin,
    },
    'nexus proxy ready',
  );
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  server.close();
  server.closeAllConnections();
  proxy.close();
  return 0;
}
