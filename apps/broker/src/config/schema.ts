import * as z from 'zod';
import { postgresUrlProblem } from '../db/postgres-url.ts';
import { bool, list } from './env-types.ts';
import { retentionAuditEnv } from './schema-audit.ts';
import { connectEnv } from './schema-connect.ts';
import { rateLimitEnv } from './schema-rate-limits.ts';
import { refreshEnv } from './schema-refresh.ts';
import { secretBackendEnv } from './schema-secret-backend.ts';

/**
 * Every environment variable the broker reads, with its meaning. `docs/configuration.md` is
 * generated from this table (`npm run docs:config`), and a test fails when the two differ.
 * Values are parsed here; cross-field rules and secret decoding live in `load.ts`.
 */

export const envSchema = z.object({
  NEXUS_ENV: z
    .enum(['development', 'production', 'test'])
    .optional()
    .describe(
      'Run mode. `production` refuses to start without explicit keys; `development` generates keys into the data directory. Falls back to `NODE_ENV`, then `development`.',
    ),
  NODE_ENV: z
    .string()
    .max(32)
    .optional()
    .describe('Read only to detect `production` (or `test`) when `NEXUS_ENV` is unset, in any letter case.'),
  NEXUS_DATA_DIR: z
    .string()
    .min(1)
    .max(1024)
    .default('./.nexus')
    .describe('Directory for the embedded SQLite database and, in development, generated keys.'),
  HOST: z.string().min(1).max(255).default('127.0.0.1').describe('Address the HTTP listener binds to.'),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080).describe('TCP port of the HTTP listener.'),
  ADMIN_PORT: z.coerce
    .number()
    .int()
    .min(0)
    .max(65535)
    .optional()
    .describe(
      'Split mode: the admin surface (providers, connections admin, agents, audit, `/metrics`, `/ready`, OpenAPI) moves to this port and `PORT` serves only the public surface (agent API, OAuth callback, hosted pages, `/oauth`, `/.well-known`, proxy, `/health`). Unset: one listener serves everything.',
    ),
  ADMIN_HOST: z
    .string()
    .min(1)
    .max(255)
    .default('127.0.0.1')
    .describe('Address the admin listener binds to in split mode; keep it on a private network.'),
  NEXUS_ROLE: z
    .enum(['all', 'gateway', 'broker'])
    .default('all')
    .describe(
      '`all`: everything (split by `ADMIN_PORT` if set). `gateway`: only the public surface, no background jobs, for a DMZ. `broker`: only the admin surface and the background jobs. `nexus serve --role` overrides it. Roles share the database (docs/decisions/0009).',
    ),
  PUBLIC_LISTENER_ADMIN_KEYS: bool
    .default(false)
    .describe(
      'Accept admin keys on a listener that serves only the public surface (split mode, `--role gateway`). Off: agents use agent tokens there, operators the admin listener.',
    ),
  CORS_ALLOWED_ORIGINS: list(8192)
    .default([])
    .describe(
      'Origins (`https://app.example.com`) whose pages may call the browser-facing routes (capture schema and submission, `/.well-known/*`, `/health`) cross-origin; `*` allows any origin. Never with credentials. Empty: no CORS headers at all.',
    ),
  GRPC_PORT: z.coerce
    .number()
    .int()
    .min(0)
    .max(65535)
    .optional()
    .describe(
      'TCP port of the gRPC listener (`nexus.v1.NexusService`, health, reflection). Unset: no gRPC listener. gRPC has its own port because it needs HTTP/2 (docs/decisions/0008).',
    ),
  GRPC_HOST: z
    .string()
    .min(1)
    .max(255)
    .optional()
    .describe('Address the gRPC listener binds to. Defaults to `HOST`.'),
  BASE_URL: z
    .url({ protocol: /^https?$/ })
    .max(2048)
    .optional()
    .describe('Public URL of the broker (used to build callback URLs). Defaults to `http://HOST:PORT`.'),
  REDIRECT_PATH: z
    .string()
    .max(256)
    .regex(/^\/[A-Za-z0-9/_.-]*$/, 'must be an absolute path such as /auth/callback')
    .default('/auth/callback')
    .describe('Path of the OAuth callback under `BASE_URL`.'),
  DATABASE_URL: z
    .string()
    .max(4096)
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .superRefine((value, ctx) => {
      const problem = /^postgres(ql)?:\/\//.test(value) ? postgresUrlProblem(value) : undefined;
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    })
    .optional()
    .describe(
      'PostgreSQL connection string, checked at start as `pg` reads it (`sslmode`: disable, prefer, require, verify-ca, verify-full or no-verify). When unset the broker uses a SQLite file in `NEXUS_DATA_DIR`.',
    ),
  DATABASE_POOL_MAX: z.coerce
    .number()
    .int()
    .min(1)
    .max(500)
    .default(10)
    .describe('Maximum PostgreSQL connections per broker process.'),
  DATABASE_CONNECT_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(100)
    .max(120_000)
    .default(5000)
    .describe(
      'PostgreSQL: how long a request waits for a connection (a new one, or a free one from the pool) before it is answered `503 database_unavailable`.',
    ),
  DATABASE_QUERY_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(100)
    .max(600_000)
    .default(10_000)
    .describe(
      'PostgreSQL: the longest a statement may run. The server cancels it then (`statement_timeout`); if no answer comes 1 s later (a frozen or unreachable server) the broker drops that connection. Either way the request is answered `503 database_unavailable`. Migrations are not limited.',
    ),
  NEXUS_AUTO_MIGRATE: bool
    .default(true)
    .describe('Apply pending migrations at start-up. Set to false to run `nexus migrate` yourself.'),
  REDIS_URL: z
    .string()
    .max(4096)
    .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
    .optional()
    .describe(
      'Optional Redis: rate-limit counters shared by every replica. Without it each process counts for itself.',
    ),
  ...rateLimitEnv,
  ENCRYPTION_KEY: z
    .string()
    .max(256)
    .optional()
    .describe(
      '32 random bytes, base64: the key that encrypts stored secrets. Generate with `nexus keys generate`.',
    ),
  ENCRYPTION_KEYS: list(8192)
    .optional()
    .describe(
      'Key ring for rotation: comma-separated base64 keys, the first is the primary (used for new writes), the others still decrypt. Takes precedence over `ENCRYPTION_KEY`.',
    ),
  USER_SECRETS_KEY: z
    .string()
    .max(256)
    .optional()
    .describe(
      '32 random bytes, base64: the key that encrypts user secrets (`/api/v2/secrets`), separate from `ENCRYPTION_KEY`. Without it (and without `USER_SECRETS_KEYS` or a key file entry) every user-secret route answers `501 user_secrets_not_configured`, and the start-up log and `nexus doctor` list user secrets as off. Development key files get one generated.',
    ),
  USER_SECRETS_KEYS: list(8192)
    .optional()
    .describe(
      'User-secrets key ring for rotation: comma-separated base64 keys, primary first. Takes precedence over `USER_SECRETS_KEY`.',
    ),
  NEXUS_KEY_FILE: z
    .string()
    .max(1024)
    .optional()
    .describe(
      'Path to a key file (JSON, mode 0600) holding the key ring and state key, as written by `nexus keys generate --file`. Used when no key variables are set.',
    ),
  KEY_PROVIDER: z
    .enum(['local', 'transit'])
    .default('local')
    .describe(
      '`local`: ENCRYPTION_KEY(S), STATE_KEY and USER_SECRETS_KEY(S) are the keys (base64). `transit`: they are Vault/OpenBao Transit ciphertexts (`vault:v1:...`, from `nexus keys generate --transit`), unwrapped by Transit at start-up with the VAULT_* connection and never stored in clear anywhere; rotate the Transit key, then `nexus keys transit-rewrap` (decision 0011).',
    ),
  TRANSIT_MOUNT: z
    .string()
    .regex(/^[A-Za-z0-9_./-]{1,128}$/)
    .default('transit')
    .describe('Mount path of the Transit secrets engine (KEY_PROVIDER=transit).'),
  TRANSIT_KEY: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,128}$/)
    .default('nexus')
    .describe('Name of the Transit key that wraps the broker keys (KEY_PROVIDER=transit).'),
  STATE_KEY: z
    .string()
    .max(256)
    .optional()
    .describe(
      '32 random bytes, base64: signs the OAuth `state` parameter. Generate with `nexus keys generate`.',
    ),
  API_KEY: z
    .string()
    .max(512)
    .optional()
    .describe(
      'An admin API key of scope `full` accepted in addition to keys created with `nexus admin-keys create` (audited as `env:API_KEY`).',
    ),
  API_KEYS: list(16384)
    .optional()
    .describe(
      'Several admin API keys, comma-separated, each `name:key`, `name@scope:key` or just `key` (audited as `env:<name>`). The scope is `full` (the default: every route), `read` (admin reads, never a credential) or `agent` (the agent-facing API only).',
    ),
  ALLOWED_RETURN_DOMAINS: list(8192)
    .default([])
    .describe(
      'Hosts a consent flow may redirect back to: exact hosts and `*.suffix` wildcards. Empty means none (localhost is allowed only in development).',
    ),
  ALLOWED_CIDRS: list(8192)
    .default([])
    .describe('When set, admin routes answer only clients whose address is inside one of these CIDR ranges.'),
  TRUSTED_PROXIES: list(8192)
    .default([])
    .describe(
      'CIDR ranges of reverse proxies whose `X-Forwarded-For` is believed. Empty: the client address is always the socket address. A range wider than a /8 of IPv4 or a /16 of public IPv6 (all of IPv4 written as `::ffff:0:0/96` included) is refused: any client in it could then set its own address. gRPC reads `x-forwarded-for` metadata the same way.',
    ),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('Minimum level of the logs written to stdout.'),
  LOG_FORMAT: z
    .enum(['auto', 'json', 'pretty'])
    .default('auto')
    .describe(
      'How logs are written: `json`, one object per line; `pretty`, readable lines; `auto`, readable lines on a terminal outside production, JSON otherwise (a pipe, a file, a log collector).',
    ),
  ...secretBackendEnv,
  NEXUS_METRICS_PUBLIC: bool
    .default(false)
    .describe('Serve `/metrics` without an admin key (for a scraper on a private network).'),
  NEXUS_BODY_LIMIT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(10 * 1024 * 1024)
    .default(256 * 1024)
    .describe('Largest request body accepted, in bytes; larger bodies get 413.'),
  NEXUS_HTTP_HEADERS_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(600)
    .default(10)
    .describe(
      "How long a client may take to send a request's headers; then the connection is closed (Node's `headersTimeout`).",
    ),
  NEXUS_HTTP_REQUEST_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(3600)
    .default(30)
    .describe(
      "How long a client may take to send a request's body once its headers are in; then it gets 408 and the connection is closed. On the credential proxy, for an authenticated caller, the longest pause in an upload instead: a long upload is not cut while it moves. Answers, server-sent events included, have no deadline here.",
    ),
  NEXUS_HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(3600)
    .default(72)
    .describe(
      "How long an idle keep-alive connection stays open. Keep it above your load balancer's idle timeout (60 s on most), so that the balancer never reuses a connection the broker is closing.",
    ),
  NEXUS_DISCOVERY_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(10)
    .max(86400)
    .default(3600)
    .describe('How long a fetched OpenID discovery document is cached.'),
  NEXUS_UPSTREAM_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(120)
    .default(30)
    .describe(
      'How long a call to a provider (code exchange, refresh, revocation) may take before it counts as a failure.',
    ),
  ...refreshEnv,
  NEXUS_AGENT_TOKEN_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .max(3600)
    .default(600)
    .describe('Lifetime of agent access tokens issued at `POST /oauth/token`.'),
  NEXUS_AGENT_SESSION_MAX_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .max(86400)
    .default(3600)
    .describe('Longest lifetime an agent session (and its session token) may be given.'),
  BACKEND_AUTH_URL: z
    .url({ protocol: /^https?$/ })
    .max(2048)
    .optional()
    .describe(
      "On-behalf-of with opaque user tokens: the developer's verification endpoint. The broker POSTs `{token}` and expects `{active, user_id, tenant_id?, permissions, clearance_level?, expires_at?}`. JWT user tokens are still verified locally against the trusted issuers.",
    ),
  BACKEND_AUTH_TOKEN: z
    .string()
    .min(16)
    .max(4096)
    .optional()
    .describe('Bearer token the broker sends to `BACKEND_AUTH_URL`, so the endpoint knows the caller.'),
  NEXUS_EGRESS_ALLOWED_CIDRS: list(8192)
    .default([])
    .describe(
      'CIDR ranges that outbound requests of the broker (the discovery, token, revocation and key-set endpoints of identity providers, probes of captured credentials, webhook deliveries, `BACKEND_AUTH_URL` and the credential proxy) may reach although they are private, loopback or link-local (refused by default, after DNS resolution and on every redirect; loopback is allowed for identity providers outside production). Example: `10.20.0.0/16` for an internal identity provider, API or receiver.',
    ),
  NEXUS_PROXY_ROUTES: list(16384)
    .default([])
    .describe(
      'Credential-proxy routes: `name=https://base-url,…`. The name is the provider whose connections the route serves. Without an entry, a provider with an `api_base_url` is a route of its own name. Plain http only outside production.',
    ),
  NEXUS_MCP_GATEWAY_ROUTES: list(16384)
    .default([])
    .describe(
      "Remote MCP servers reachable through the gateway at `/mcp-gateway/<name>`, with the acting user's connection token: `name` marks the credential-proxy route of that name (its base URL is the MCP endpoint), `name=https://mcp.example.com/mcp` gives provider `name` an MCP endpoint beside its API route. Routes not listed are not reachable through the gateway. Plain http only outside production.",
    ),
  NEXUS_MCP_ISSUERS: list(16384)
    .default([])
    .describe(
      "Trusted issuers whose users' access tokens `/mcp` accepts as the bearer token itself (an MCP client acting for a person, with the developer's identity provider as its authorization server), and the agent such a caller acts as: `<issuer> <agent_id> [<client_id> …],…`. The issuer must also be a trusted issuer (`/admin/v1/trusted-issuers`); the token must name this broker (`BASE_URL`) as its audience and carry the `mcp` scope; the agent's grant and scopes apply beside the user's permissions. Client ids, when given, restrict the token's `azp`/`client_id`. Unlisted issuers' tokens are refused at `/mcp`.",
    ),
  NEXUS_PROXY_BODY_LIMIT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(5 * 1024 ** 3)
    .default(10 * 1024 * 1024)
    .describe(
      'Largest request body the credential proxy forwards (413 beyond). Bodies stream, except for `hmac_payload` and `aws_sigv4`, which sign them whole and hold them in memory up to this size.',
    ),
  NEXUS_PROXY_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(600)
    .default(30)
    .describe(
      'How long the credential proxy waits for the upstream response headers (504 `upstream_timeout` after). A response that has started streams without a deadline.',
    ),
  ...retentionAuditEnv,
  ...connectEnv,
});

export type EnvInput = z.input<typeof envSchema>;
export type ParsedEnv = z.output<typeof envSchema>;

export const SECRET_VARIABLES: ReadonlySet<string> = new Set([
  'ENCRYPTION_KEY',
  'ENCRYPTION_KEYS',
  'STATE_KEY',
  'API_KEY',
  'API_KEYS',
  'DATABASE_URL',
  'REDIS_URL',
  'VAULT_TOKEN',
  'VAULT_SECRET_ID',
  'BACKEND_AUTH_TOKEN',
  'USER_SECRETS_KEY',
  'USER_SECRETS_KEYS',
]);
