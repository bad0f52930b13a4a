import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import type * as z from 'zod';
import { ADMIN_SCOPES, type AdminScope } from '../auth/principal.ts';
import { isPlainHttp } from './checks.ts';
import type { Config, NamedApiKey, RunMode } from './config.types.ts';
import { parseKeys } from './keys-config.ts';
import { parseMcpIssuers } from './mcp-issuers.ts';
import { proxyRangeTooBroad } from './proxy-breadth.ts';
import { parseMcpGatewayRoutes, parseProxyRoutes } from './proxy-routes.ts';
import { envSchema, type ParsedEnv, SECRET_VARIABLES } from './schema.ts';
import { parseSecretBackend } from './secret-backend-config.ts';
import { SecretBytes } from './secret-value.ts';

export type { Config, DatabaseConfig, NamedApiKey, RunMode } from './config.types.ts';
export type { SecretBackendConfig, VaultAuthConfig } from './secret-backend-config.ts';

function describeIssue(issue: z.core.$ZodIssue | undefined): string {
  if (issue === undefined) return 'invalid value';
  if (issue.code === 'invalid_type')
    return issue.expected === 'number' ? 'must be a whole number' : `must be a ${issue.expected}`;
  if (issue.code === 'invalid_value') return `must be one of ${issue.values.map(String).join(', ')}`;
  if (issue.code === 'too_big')
    return `must be at most ${String(issue.maximum)}${issue.origin === 'string' ? ' characters' : ''}`;
  if (issue.code === 'too_small')
    return `must be at least ${String(issue.minimum)}${issue.origin === 'string' ? ' characters' : ''}`;
  return issue.message;
}

export class ConfigError extends Error {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/**
 * A value as an error may show it: a password in a URL's userinfo (`scheme://user:secret@host`),
 * in any variable, is replaced, whether or not the value parses as a URL.
 */
function withoutUserinfo(value: string): string {
  return value.replace(/(\/\/[^/@\s]*?):[^/@\s]*@/g, '$1:***@');
}

function checkCidrs(
  name: string,
  entries: readonly string[],
  problems: string[],
  options: { wholeSpace: boolean } = { wholeSpace: true },
): void {
  for (const entry of entries) {
    const [addr, prefix, extra] = entry.split('/');
    const family = isIP(addr ?? '');
    const max = family === 6 ? 128 : 32;
    const bits = prefix === undefined ? max : Number(prefix);
    if (family === 0 || extra !== undefined || !Number.isInteger(bits) || bits < 0 || bits > max) {
      problems.push(`${name}: "${entry.slice(0, 64)}" is not an IP address or CIDR range such as 10.0.0.0/8`);
    } else if (bits === 0 && !options.wholeSpace) {
      problems.push(
        `${name}: "${entry.slice(0, 64)}" trusts every address, so any client could set X-Forwarded-For: list the addresses of your proxies`,
      );
    } else if (!options.wholeSpace) {
      const broad = proxyRangeTooBroad(addr!, bits);
      if (broad !== undefined)
        problems.push(
          `${name}: "${entry.slice(0, 64)}" is ${broad}, so clients in it could set X-Forwarded-For: list the addresses of your proxies`,
        );
    }
  }
}

const HOST_PATTERN = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

function parseApiKeys(raw: { API_KEY?: string; API_KEYS?: string[] }, problems: string[]): NamedApiKey[] {
  const keys: NamedApiKey[] = [];
  const check = (name: string, key: string, variable: string, scope: AdminScope = 'full') => {
    if (key.length < 24) {
      problems.push(
        `${variable}: the key named "${name}" is shorter than 24 characters; use \`nexus admin-keys create\` or 32 random bytes`,
      );
      return;
    }
    if (keys.some((k) => k.name === name)) {
      problems.push(`${variable}: the key name "${name}" is used twice`);
      return;
    }
    keys.push({ name, key: new SecretBytes(new TextEncoder().encode(key)), scope });
  };
  if (raw.API_KEY !== undefined && raw.API_KEY.length > 0) check('env:API_KEY', raw.API_KEY, 'API_KEY');
  raw.API_KEYS?.forEach((entry, index) => {
    // `name:key`, `name@scope:key` (names have no "@"), or else the whole entry is the key.
    const colon = entry.indexOf(':');
    const label =
      colon > 0 ? /^([A-Za-z0-9_.-]{1,64})(?:@([a-z]{1,16}))?$/.exec(entry.slice(0, colon)) : null;
    const scope = label?.[2];
    if (scope !== undefined && !(ADMIN_SCOPES as readonly string[]).includes(scope)) {
      problems.push(
        `API_KEYS: the key named "${label![1]}" has an unknown scope "${scope}" (one of ${ADMIN_SCOPES.join(', ')})`,
      );
      return;
    }
    check(
      label ? `env:${label[1]}` : `env:API_KEYS[${index}]`,
      label ? entry.slice(colon + 1) : entry,
      'API_KEYS',
      scope as AdminScope | undefined,
    );
  });
  return keys;
}

function deepFreeze<T>(value: T): T {
  if (
    value !== null &&
    typeof value === 'object' &&
    !(value instanceof SecretBytes) &&
    !Object.isFrozen(value)
  ) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/**
 * Parses and validates the environment once. Pure: reads only `env`, touches no files.
 * Throws a `ConfigError` listing every problem at once, each naming the variable and the fix.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>, cwd = process.cwd()): Config {
  // Empty strings mean "unset", as most deployment tools write them.
  const input = Object.fromEntries(
    Object.keys(envSchema.shape)
      .map((name) => [name, env[name]] as const)
      .filter(([, value]) => value !== undefined && value !== ''),
  );
  // Each variable is parsed on its own so that one bad value does not hide the others.
  const problems: string[] = [];
  const parsed: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(envSchema.shape)) {
    const result = (schema as z.ZodType).safeParse(input[name]);
    if (result.success) {
      parsed[name] = result.data;
      continue;
    }
    const shown = SECRET_VARIABLES.has(name)
      ? ''
      : ` (got "${withoutUserinfo(String(input[name])).slice(0, 40)}")`;
    problems.push(`${name}: ${describeIssue(result.error.issues[0])}${shown}`);
  }
  const e = parsed as ParsedEnv;
  // NODE_ENV as other tools read it: `Production` is production, not a silent development mode.
  const nodeEnv = e.NODE_ENV?.trim().toLowerCase();
  const mode: RunMode =
    e.NEXUS_ENV ?? (nodeEnv === 'production' ? 'production' : nodeEnv === 'test' ? 'test' : 'development');
  const dataDir = resolve(cwd, e.NEXUS_DATA_DIR ?? '.nexus');
  const { encryptionKeys, stateKey, userSecretsKeys, explicitKeyFile, transit } = parseKeys(
    e,
    mode,
    cwd,
    problems,
  );

  const apiKeys = parseApiKeys(e, problems);
  checkCidrs('ALLOWED_CIDRS', e.ALLOWED_CIDRS ?? [], problems);
  checkCidrs('TRUSTED_PROXIES', e.TRUSTED_PROXIES ?? [], problems, { wholeSpace: false });
  checkCidrs('NEXUS_EGRESS_ALLOWED_CIDRS', e.NEXUS_EGRESS_ALLOWED_CIDRS ?? [], problems);
  for (const origin of e.CORS_ALLOWED_ORIGINS ?? []) {
    const parsed = URL.parse(origin);
    if (origin !== '*' && (parsed === null || parsed.origin !== origin))
      problems.push(
        `CORS_ALLOWED_ORIGINS: "${origin.slice(0, 80)}" is not an origin (scheme://host[:port], no path or trailing slash), or *`,
      );
  }
  if (e.ADMIN_PORT !== undefined && e.ADMIN_PORT !== 0 && e.ADMIN_PORT === e.PORT)
    problems.push('ADMIN_PORT: must differ from PORT (the admin surface gets a listener of its own)');
  // gRPC binds GRPC_HOST (default HOST): on the same host, a port another listener has fails
  // only after start-up has migrated and printed keys.
  if (
    e.GRPC_PORT !== undefined &&
    e.GRPC_PORT !== 0 &&
    (e.GRPC_HOST === undefined || e.GRPC_HOST === e.HOST) &&
    (e.GRPC_PORT === e.PORT || e.GRPC_PORT === e.ADMIN_PORT)
  )
    problems.push(
      `GRPC_PORT: must differ from PORT${e.ADMIN_PORT === undefined ? '' : ' and ADMIN_PORT'} (gRPC gets a listener of its own)`,
    );
  const proxyRoutes = parseProxyRoutes('NEXUS_PROXY_ROUTES', e.NEXUS_PROXY_ROUTES ?? [], problems, {
    requireHttps: mode === 'production',
  });
  const mcpGatewayRoutes = parseMcpGatewayRoutes(
    'NEXUS_MCP_GATEWAY_ROUTES',
    e.NEXUS_MCP_GATEWAY_ROUTES ?? [],
    problems,
    { requireHttps: mode === 'production' },
  );
  const mcpIssuers = parseMcpIssuers('NEXUS_MCP_ISSUERS', e.NEXUS_MCP_ISSUERS ?? [], problems, {
    requireHttps: mode === 'production',
  });
  if (e.NEXUS_REFRESH_LEASE_SECONDS < e.NEXUS_UPSTREAM_TIMEOUT_SECONDS + 2)
    problems.push(
      `NEXUS_REFRESH_LEASE_SECONDS: must be at least NEXUS_UPSTREAM_TIMEOUT_SECONDS + 2 (${e.NEXUS_UPSTREAM_TIMEOUT_SECONDS + 2}), or a slow refresh could outlive its lease and be repeated; raise it or lower the timeout`,
    );
  const allowedReturnDomains = (e.ALLOWED_RETURN_DOMAINS ?? []).map((d) => d.toLowerCase());
  for (const domain of allowedReturnDomains) {
    if (!HOST_PATTERN.test(domain) || domain.length > 253) {
      problems.push(
        `ALLOWED_RETURN_DOMAINS: "${domain.slice(0, 64)}" is not a host name or *.suffix pattern (no scheme, port or path)`,
      );
    }
  }
  if (mode === 'production' && e.BASE_URL === undefined && !('BASE_URL' in input)) {
    problems.push(
      'BASE_URL: required in production: the public https URL users and providers reach the broker at',
    );
  } else if (mode === 'production' && isPlainHttp(e.BASE_URL)) {
    problems.push('BASE_URL: must use https in production');
  }
  if (mode === 'production' && isPlainHttp(e.NEXUS_CONNECT_BRAND_LOGO_URL))
    problems.push('NEXUS_CONNECT_BRAND_LOGO_URL: must use https in production');
  if (mode === 'production' && isPlainHttp(e.NEXUS_CONNECT_VERIFIER_URL))
    problems.push('NEXUS_CONNECT_VERIFIER_URL: must use https in production');
  if (e.NEXUS_CONNECT_VERIFIER_REQUIRED && e.NEXUS_CONNECT_VERIFIER_URL === undefined)
    problems.push(
      "NEXUS_CONNECT_VERIFIER_REQUIRED: needs NEXUS_CONNECT_VERIFIER_URL, the application's page where the browser goes to have the user confirmed",
    );
  const secretBackend =
    e.SECRET_BACKEND === undefined ? undefined : parseSecretBackend(e, mode, problems, cwd);
  const fallbackKind = e.SECRET_BACKEND_FALLBACK;
  const vaultFamily = (k: string | undefined) => k === 'hashicorp-vault' || k === 'openbao';
  if (
    fallbackKind !== undefined &&
    (fallbackKind === e.SECRET_BACKEND || (vaultFamily(fallbackKind) && vaultFamily(e.SECRET_BACKEND)))
  )
    problems.push(
      `SECRET_BACKEND_FALLBACK: must be a different backend from SECRET_BACKEND (${e.SECRET_BACKEND}), configured by other variables; unset it when not migrating`,
    );
  const secretBackendFallback =
    fallbackKind === undefined
      ? undefined
      : parseSecretBackend({ ...e, SECRET_BACKEND: fallbackKind }, mode, problems, cwd);
  if (mode === 'production' && isPlainHttp(e.BACKEND_AUTH_URL))
    problems.push('BACKEND_AUTH_URL: must use https in production (user tokens are sent to it)');
  if (problems.length > 0 || secretBackend === undefined) throw new ConfigError(problems);

  const hostForUrl = e.HOST.includes(':') ? `[${e.HOST}]` : e.HOST === '0.0.0.0' ? '127.0.0.1' : e.HOST;
  const config: Config = {
    mode,
    dataDir,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    http: {
      host: e.HOST,
      port: e.PORT,
      baseUrl: (e.BASE_URL ?? `http://${hostForUrl}:${e.PORT}`).replace(/\/+$/, ''),
      redirectPath: e.REDIRECT_PATH,
      bodyLimit: e.NEXUS_BODY_LIMIT_BYTES,
      trustedProxies: e.TRUSTED_PROXIES,
      allowedCidrs: e.ALLOWED_CIDRS,
      metricsPublic: e.NEXUS_METRICS_PUBLIC,
      timeouts: {
        headersMs: e.NEXUS_HTTP_HEADERS_TIMEOUT_SECONDS * 1000,
        requestMs: e.NEXUS_HTTP_REQUEST_TIMEOUT_SECONDS * 1000,
        keepAliveMs: e.NEXUS_HTTP_KEEP_ALIVE_TIMEOUT_SECONDS * 1000,
      },
    },
    adminListener: e.ADMIN_PORT === undefined ? undefined : { host: e.ADMIN_HOST, port: e.ADMIN_PORT },
    role: e.NEXUS_ROLE,
    corsAllowedOrigins: e.CORS_ALLOWED_ORIGINS,
    publicListenerAdminKeys: e.PUBLIC_LISTENER_ADMIN_KEYS,
    grpc: e.GRPC_PORT === undefined ? undefined : { host: e.GRPC_HOST ?? e.HOST, port: e.GRPC_PORT },
    database:
      e.DATABASE_URL === undefined
        ? { kind: 'sqlite', file: resolve(dataDir, 'nexus.db') }
        : {
            kind: 'postgres',
            url: new SecretBytes(new TextEncoder().encode(e.DATABASE_URL)),
            poolMax: e.DATABASE_POOL_MAX,
            connectTimeoutMs: e.DATABASE_CONNECT_TIMEOUT_MS,
            queryTimeoutMs: e.DATABASE_QUERY_TIMEOUT_MS,
          },
    autoMigrate: e.NEXUS_AUTO_MIGRATE,
    redisUrl: e.REDIS_URL === undefined ? undefined : new SecretBytes(new TextEncoder().encode(e.REDIS_URL)),
    rateLimits: {
      enabled: e.RATE_LIMIT_ENABLED,
      windowMs: e.RATE_LIMIT_WINDOW_SECONDS * 1000,
      // The limits are per minute; a shorter window gets its proportional share, at least 1.
      limits: Object.fromEntries(
        (
          [
            ['request_connection', e.RATE_LIMIT_REQUEST_CONNECTION_RPM],
            ['callback', e.RATE_LIMIT_CALLBACK_RPM],
            ['token', e.RATE_LIMIT_TOKEN_RPM],
            ['refresh', e.RATE_LIMIT_REFRESH_RPM],
            ['capture', e.RATE_LIMIT_CAPTURE_RPM],
            ['login', e.RATE_LIMIT_LOGIN_RPM],
            ['auth_failure', e.RATE_LIMIT_AUTH_FAILURES_RPM],
          ] as const
        ).map(([bucket, rpm]) => [bucket, Math.max(1, Math.floor((rpm * e.RATE_LIMIT_WINDOW_SECONDS) / 60))]),
      ) as Config['rateLimits']['limits'],
    },
    keys: {
      encryptionKeys,
      stateKey,
      userSecretsKeys,
      keyFile:
        transit !== undefined
          ? undefined
          : (explicitKeyFile ??
            (encryptionKeys === undefined || stateKey === undefined
              ? resolve(dataDir, 'keys.json')
              : undefined)),
      generateIfMissing: mode !== 'production' && explicitKeyFile === undefined && transit === undefined,
      transit,
    },
    apiKeys,
    allowedReturnDomains,
    secretBackend,
    secretBackendFallback,
    tokenStore: e.TOKEN_STORE,
    discoveryTtlSeconds: e.NEXUS_DISCOVERY_TTL_SECONDS,
    upstreamTimeoutMs: e.NEXUS_UPSTREAM_TIMEOUT_SECONDS * 1000,
    egressAllowedCidrs: e.NEXUS_EGRESS_ALLOWED_CIDRS,
    proxy: {
      routes: proxyRoutes,
      mcpGatewayRoutes,
      mcpIssuers,
      bodyLimit: e.NEXUS_PROXY_BODY_LIMIT_BYTES,
      timeoutMs: e.NEXUS_PROXY_TIMEOUT_SECONDS * 1000,
    },
    refresh: {
      marginMs: e.NEXUS_REFRESH_MARGIN_SECONDS * 1000,
      jitterMs: e.NEXUS_REFRESH_JITTER_SECONDS * 1000,
      concurrency: e.NEXUS_REFRESH_CONCURRENCY,
      providerConcurrency: e.NEXUS_REFRESH_PROVIDER_CONCURRENCY,
      leaseMs: e.NEXUS_REFRESH_LEASE_SECONDS * 1000,
      readWaitMs: e.NEXUS_REFRESH_READ_WAIT_MS,
      giveUpMs: e.NEXUS_REFRESH_GIVE_UP_HOURS * 3600_000,
      pollMs: e.NEXUS_WORKER_POLL_MS,
    },
    auditBatchMax: e.NEXUS_AUDIT_BATCH_MAX,
    agentTokenTtlSeconds: e.NEXUS_AGENT_TOKEN_TTL_SECONDS,
    agentSessionMaxTtlSeconds: e.NEXUS_AGENT_SESSION_MAX_TTL_SECONDS,
    backendAuth:
      e.BACKEND_AUTH_URL === undefined
        ? undefined
        : {
            url: e.BACKEND_AUTH_URL,
            token:
              e.BACKEND_AUTH_TOKEN === undefined
                ? undefined
                : new SecretBytes(new TextEncoder().encode(e.BACKEND_AUTH_TOKEN)),
          },
    auditRetention: {
      retentionMs: e.NEXUS_AUDIT_RETENTION_DAYS * 86_400_000,
      exportDir: resolve(e.NEXUS_AUDIT_EXPORT_DIR ?? join(dataDir, 'audit-export')),
    },
    eventRetentionMs: e.NEXUS_EVENT_RETENTION_DAYS * 86_400_000,
    connect: {
      sessionTtlMs: e.NEXUS_CONNECT_SESSION_TTL_SECONDS * 1000,
      brand: {
        name: e.NEXUS_CONNECT_BRAND_NAME,
        logoUrl: e.NEXUS_CONNECT_BRAND_LOGO_URL,
        color: e.NEXUS_CONNECT_BRAND_COLOR.toLowerCase(),
      },
      ...(e.NEXUS_CONNECT_VERIFIER_URL === undefined
        ? {}
        : { verifier: { url: e.NEXUS_CONNECT_VERIFIER_URL, required: e.NEXUS_CONNECT_VERIFIER_REQUIRED } }),
    },
  };
  return deepFreeze(config);
}
