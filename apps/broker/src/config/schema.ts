import * as z from 'zod';

/**
 * Every environment variable the broker reads, with its meaning. `docs/configuration.md` is
 * generated from this table (`npm run docs:config`), and a test fails when the two differ.
 * Values are parsed here; cross-field rules and secret decoding live in `load.ts`.
 */
const list = (max: number) =>
  z
    .string()
    .max(max)
    .transform((s) =>
      s
        .split(',')
        .map((part) => part.trim())
        .filter((part) => part.length > 0),
    );

const bool = z.stringbool({ truthy: ['true', '1', 'yes', 'on'], falsy: ['false', '0', 'no', 'off'] });

export interface EnvVarDoc {
  readonly name: string;
  readonly description: string;
  readonly default?: string;
  readonly group: string;
  readonly secret?: boolean;
}

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
    .describe('Read only to detect `production` when `NEXUS_ENV` is unset.'),
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
    .optional()
    .describe('PostgreSQL connection string. When unset the broker uses a SQLite file in `NEXUS_DATA_DIR`.'),
  DATABASE_POOL_MAX: z.coerce
    .number()
    .int()
    .min(1)
    .max(500)
    .default(10)
    .describe('Maximum PostgreSQL connections per broker process.'),
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
  RATE_LIMIT_ENABLED: bool
    .default(true)
    .describe(
      'Rate limits per client (agent, else admin key, else client address) on request-connection, the OAuth callback, token reads, refreshes and credential capture. Counters in memory, or in Redis when `REDIS_URL` is set (shared by replicas). 429 with Retry-After over the limit.',
    ),
  RATE_LIMIT_WINDOW_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(3600)
    .default(60)
    .describe(
      'Length of the fixed, clock-aligned counting window. The `*_RPM` limits are per minute; a shorter window allows the proportional share (at least 1).',
    ),
  RATE_LIMIT_REQUEST_CONNECTION_RPM: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(60)
    .describe('Connection requests (`/v1/request-connection`, `/auth/consent-spec`) per client per minute.'),
  RATE_LIMIT_CALLBACK_RPM: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(120)
    .describe('OAuth callbacks (`/auth/callback`) per client address per minute.'),
  RATE_LIMIT_TOKEN_RPM: z.coerce
    .number()
    .int()
    .min(1)
    .max(10_000_000)
    .default(6000)
    .describe(
      'Token reads (`/v1/token/{id}`, `/v1/resolve` and their admin forms, gRPC GetToken) per client per minute.',
    ),
  RATE_LIMIT_REFRESH_RPM: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(120)
    .describe('Forced refreshes (`/v1/refresh/{id}`, gRPC RefreshConnection) per client per minute.'),
  RATE_LIMIT_CAPTURE_RPM: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(30)
    .describe(
      'Credential captures (`/v1/capture-credential`, the hosted form) per client address per minute.',
    ),
  RATE_LIMIT_LOGIN_RPM: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(60)
    .describe('Agent logins (`/oauth/token`) per client address per minute.'),
  RATE_LIMIT_AUTH_FAILURES_RPM: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(30)
    .describe(
      'Refused credentials (answers 401) per client address per minute, on any route; past it the address gets 429 before its credential is checked. Counted per process.',
    ),
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
      '32 random bytes, base64: the key that encrypts user secrets (`/api/v2/secrets`), separate from `ENCRYPTION_KEY`. Without it (and without `USER_SECRETS_KEYS` or a key file entry) the user-secret API answers 503. Development key files get one generated.',
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
      'An admin API key accepted in addition to keys created with `nexus admin-keys create` (audited as `env:API_KEY`).',
    ),
  API_KEYS: list(16384)
    .optional()
    .describe(
      'Several admin API keys, comma-separated, each `name:key` or just `key` (audited as `env:<name>`).',
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
      'CIDR ranges of reverse proxies whose `X-Forwarded-For` is believed. Empty: the client address is always the socket address.',
    ),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('Minimum level of the JSON logs written to stdout.'),
  SECRET_BACKEND: z
    .enum(['internal', 'hashicorp-vault', 'openbao', 'aws-secrets-manager', 'gcp-secret-manager'])
    .default('internal')
    .describe(
      'Where provider credentials are stored. `internal`: encrypted in the broker database (client secret only). The others keep `client_id` and `client_secret` at `<prefix>/<provider name>/…` in that secret manager; see docs/operations.md.',
    ),
  SECRET_BACKEND_FALLBACK: z
    .enum(['internal', 'hashicorp-vault', 'openbao', 'aws-secrets-manager', 'gcp-secret-manager'])
    .optional()
    .describe(
      'While migrating between backends: the old backend, read when SECRET_BACKEND has no copy of a credential (configured by the same variables). Writes go to SECRET_BACKEND only; deletes to both. Unset it once `nexus secrets migrate` has finished.',
    ),
  TOKEN_STORE: z
    .enum(['database', 'secret-backend'])
    .default('database')
    .describe(
      'Where connection credentials (access and refresh tokens, captured API keys) are kept. `database`: sealed in the `connections` row. `secret-backend`: the same sealed value at `connections/<connection id>` in SECRET_BACKEND (under its prefix), the row keeping only a marker; every token fetch then costs one secret-backend read. Existing connections move with `nexus secrets migrate --tokens`; see docs/operations.md.',
    ),
  VAULT_ADDR: z
    .url({ protocol: /^https?$/ })
    .max(2048)
    .optional()
    .describe('`hashicorp-vault` / `openbao`: the server URL, e.g. `https://vault.example.com:8200`.'),
  VAULT_TOKEN: z
    .string()
    .max(4096)
    .optional()
    .describe('`hashicorp-vault` / `openbao`: a token (renewed before it expires). Or use AppRole.'),
  VAULT_ROLE_ID: z
    .string()
    .max(256)
    .optional()
    .describe(
      '`hashicorp-vault` / `openbao`: AppRole role id (with VAULT_SECRET_ID), instead of VAULT_TOKEN.',
    ),
  VAULT_SECRET_ID: z.string().max(4096).optional().describe('AppRole secret id, with VAULT_ROLE_ID.'),
  VAULT_K8S_ROLE: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe(
      "Vault/OpenBao Kubernetes auth: the Vault role to log in as with the pod's service-account token (instead of VAULT_TOKEN or AppRole).",
    ),
  VAULT_K8S_TOKEN_FILE: z
    .string()
    .min(1)
    .max(1024)
    .default('/var/run/secrets/kubernetes.io/serviceaccount/token')
    .describe(
      'The service-account JWT for Kubernetes auth, read again at every login (projected tokens rotate).',
    ),
  VAULT_K8S_MOUNT: z
    .string()
    .regex(/^[A-Za-z0-9_./-]{1,128}$/)
    .default('kubernetes')
    .describe('Mount path of the Kubernetes auth method.'),
  VAULT_APPROLE_MOUNT: z
    .string()
    .regex(/^[A-Za-z0-9_-][A-Za-z0-9_/-]{0,127}$/)
    .default('approle')
    .describe('Where the AppRole auth method is mounted.'),
  VAULT_MOUNT: z
    .string()
    .regex(/^[A-Za-z0-9_-][A-Za-z0-9_/-]{0,127}$/)
    .default('secret')
    .describe('The KV secrets engine mount.'),
  VAULT_KV_VERSION: z
    .enum(['1', '2'])
    .default('2')
    .describe('KV engine version of VAULT_MOUNT: `2` (versions, check-and-set writes) or `1`.'),
  VAULT_PATH_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/)
    .max(256)
    .default('nexus/providers')
    .describe('Path inside the mount under which Nexus keeps its secrets.'),
  VAULT_NAMESPACE: z
    .string()
    .max(256)
    .optional()
    .describe('Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`.'),
  AWS_REGION: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/)
    .optional()
    .describe(
      '`aws-secrets-manager`: the region, e.g. `us-east-1`. Credentials come from the AWS default chain.',
    ),
  AWS_SECRET_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_+=.@-]+(\/[A-Za-z0-9_+=.@-]+)*$/)
    .max(256)
    .default('nexus/providers')
    .describe('`aws-secrets-manager`: secrets are named `<prefix>/<path>`.'),
  AWS_ENDPOINT_URL_SECRETS_MANAGER: z
    .url({ protocol: /^https?$/ })
    .max(2048)
    .optional()
    .describe('`aws-secrets-manager`: endpoint override (VPC endpoint, or an emulator in tests).'),
  GCP_PROJECT_ID: z
    .string()
    .regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$|^[0-9]{1,20}$/)
    .optional()
    .describe(
      '`gcp-secret-manager`: the project id or number. Credentials are Application Default Credentials.',
    ),
  GCP_SECRET_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9-]{1,64}$/)
    .default('nexus-providers')
    .describe('`gcp-secret-manager`: secret ids are `<prefix>_<encoded path>`.'),
  GCP_SECRET_MANAGER_ENDPOINT: z
    .string()
    .regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/)
    .max(253)
    .optional()
    .describe('`gcp-secret-manager`: API endpoint `host[:port]` override (regional or private endpoint).'),
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
  NEXUS_REFRESH_MARGIN_SECONDS: z.coerce
    .number()
    .int()
    .min(30)
    .max(86400)
    .default(300)
    .describe(
      'The background worker refreshes an OAuth connection this long before its access token expires.',
    ),
  NEXUS_REFRESH_JITTER_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .max(3600)
    .default(60)
    .describe(
      'Up to this much earlier again, chosen at random per token, so tokens issued together are not all refreshed in the same second.',
    ),
  NEXUS_REFRESH_CONCURRENCY: z.coerce
    .number()
    .int()
    .min(1)
    .max(256)
    .default(32)
    .describe('Refreshes one worker process runs at once.'),
  NEXUS_REFRESH_PROVIDER_CONCURRENCY: z.coerce
    .number()
    .int()
    .min(1)
    .max(256)
    .default(16)
    .describe(
      'Refreshes one worker process runs at once against the same provider, so a slow provider cannot take every slot.',
    ),
  NEXUS_REFRESH_LEASE_SECONDS: z.coerce
    .number()
    .int()
    .min(2)
    .max(600)
    .default(45)
    .describe(
      'How long a refresh lease lasts; a replica that dies holding one is replaced after this. At least `NEXUS_UPSTREAM_TIMEOUT_SECONDS` + 2; a refresh that has less of its lease left than the upstream timeout gives up and retries later.',
    ),
  NEXUS_REFRESH_GIVE_UP_HOURS: z.coerce
    .number()
    .int()
    .min(1)
    .max(8760)
    .default(168)
    .describe(
      'A connection whose refresh keeps failing (with its access token expired), or that stays `attention_required`, this long becomes `expired`.',
    ),
  NEXUS_WORKER_POLL_MS: z.coerce
    .number()
    .int()
    .min(50)
    .max(60000)
    .default(1000)
    .describe('How often an idle worker looks for due refreshes and webhook deliveries.'),
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
      'CIDR ranges that probes of captured credentials, webhook deliveries and the credential proxy may reach although they are private, loopback or link-local (refused by default, after DNS resolution and on every redirect). Example: `10.20.0.0/16` for an internal API or receiver.',
    ),
  NEXUS_PROXY_ROUTES: list(16384)
    .default([])
    .describe(
      'Credential-proxy routes: `name=https://base-url,…`. The name is the provider whose connections the route serves. Without an entry, a provider with an `api_base_url` is a route of its own name. Plain http only outside production.',
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
  NEXUS_EVENT_RETENTION_DAYS: z.coerce
    .number()
    .int()
    .min(0)
    .max(36500)
    .default(30)
    .describe(
      'Connection events (`/admin/v1/events`) and their finished webhook deliveries are deleted after this many days (an event with a delivery still pending stays until it finishes). 0 keeps them. The audit log, not the event feed, is the lasting record.',
    ),
  NEXUS_AUDIT_RETENTION_DAYS: z.coerce
    .number()
    .int()
    .min(0)
    .max(36500)
    .default(0)
    .describe(
      'Audit events older than this many days are exported to `NEXUS_AUDIT_EXPORT_DIR`, then deleted (the chain stays verifiable). 0 keeps every event.',
    ),
  NEXUS_AUDIT_EXPORT_DIR: z
    .string()
    .min(1)
    .max(1024)
    .optional()
    .describe(
      'Where retention writes the events it removes (JSON Lines, mode 0600, one file per batch). Defaults to `NEXUS_DATA_DIR/audit-export`.',
    ),
  NEXUS_AUDIT_BATCH_MAX: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(200)
    .describe('Most audit events written in one group commit.'),
});

export type EnvInput = z.input<typeof envSchema>;
export type ParsedEnv = z.output<typeof envSchema>;

const groups: Record<string, string> = {
  NEXUS_ENV: 'General',
  NODE_ENV: 'General',
  NEXUS_DATA_DIR: 'General',
  LOG_LEVEL: 'General',
  HOST: 'HTTP',
  PORT: 'HTTP',
  ADMIN_PORT: 'HTTP',
  ADMIN_HOST: 'HTTP',
  NEXUS_ROLE: 'HTTP',
  CORS_ALLOWED_ORIGINS: 'HTTP',
  PUBLIC_LISTENER_ADMIN_KEYS: 'HTTP',
  GRPC_PORT: 'gRPC',
  GRPC_HOST: 'gRPC',
  BASE_URL: 'HTTP',
  REDIRECT_PATH: 'HTTP',
  NEXUS_BODY_LIMIT_BYTES: 'HTTP',
  NEXUS_METRICS_PUBLIC: 'HTTP',
  DATABASE_URL: 'Storage',
  DATABASE_POOL_MAX: 'Storage',
  NEXUS_AUTO_MIGRATE: 'Storage',
  REDIS_URL: 'Storage',
  RATE_LIMIT_ENABLED: 'Rate limits',
  RATE_LIMIT_WINDOW_SECONDS: 'Rate limits',
  RATE_LIMIT_REQUEST_CONNECTION_RPM: 'Rate limits',
  RATE_LIMIT_CALLBACK_RPM: 'Rate limits',
  RATE_LIMIT_TOKEN_RPM: 'Rate limits',
  RATE_LIMIT_REFRESH_RPM: 'Rate limits',
  RATE_LIMIT_CAPTURE_RPM: 'Rate limits',
  RATE_LIMIT_LOGIN_RPM: 'Rate limits',
  RATE_LIMIT_AUTH_FAILURES_RPM: 'Rate limits',
  SECRET_BACKEND: 'Secret backend',
  SECRET_BACKEND_FALLBACK: 'Secret backend',
  TOKEN_STORE: 'Secret backend',
  VAULT_ADDR: 'Secret backend',
  VAULT_TOKEN: 'Secret backend',
  VAULT_ROLE_ID: 'Secret backend',
  VAULT_SECRET_ID: 'Secret backend',
  VAULT_APPROLE_MOUNT: 'Secret backend',
  VAULT_K8S_ROLE: 'Secret backend',
  VAULT_K8S_TOKEN_FILE: 'Secret backend',
  VAULT_K8S_MOUNT: 'Secret backend',
  VAULT_MOUNT: 'Secret backend',
  VAULT_KV_VERSION: 'Secret backend',
  VAULT_PATH_PREFIX: 'Secret backend',
  VAULT_NAMESPACE: 'Secret backend',
  AWS_REGION: 'Secret backend',
  AWS_SECRET_PREFIX: 'Secret backend',
  AWS_ENDPOINT_URL_SECRETS_MANAGER: 'Secret backend',
  GCP_PROJECT_ID: 'Secret backend',
  GCP_SECRET_PREFIX: 'Secret backend',
  GCP_SECRET_MANAGER_ENDPOINT: 'Secret backend',
  ENCRYPTION_KEY: 'Keys',
  ENCRYPTION_KEYS: 'Keys',
  NEXUS_KEY_FILE: 'Keys',
  KEY_PROVIDER: 'Keys',
  TRANSIT_MOUNT: 'Keys',
  TRANSIT_KEY: 'Keys',
  STATE_KEY: 'Keys',
  USER_SECRETS_KEY: 'Keys',
  USER_SECRETS_KEYS: 'Keys',
  API_KEY: 'Access control',
  API_KEYS: 'Access control',
  ALLOWED_RETURN_DOMAINS: 'Access control',
  ALLOWED_CIDRS: 'Access control',
  TRUSTED_PROXIES: 'Access control',
  NEXUS_DISCOVERY_TTL_SECONDS: 'Providers',
  NEXUS_UPSTREAM_TIMEOUT_SECONDS: 'Providers',
  NEXUS_EGRESS_ALLOWED_CIDRS: 'Providers',
  NEXUS_PROXY_ROUTES: 'Credential proxy',
  NEXUS_PROXY_BODY_LIMIT_BYTES: 'Credential proxy',
  NEXUS_PROXY_TIMEOUT_SECONDS: 'Credential proxy',
  NEXUS_AGENT_TOKEN_TTL_SECONDS: 'Agents',
  NEXUS_AGENT_SESSION_MAX_TTL_SECONDS: 'Agents',
  BACKEND_AUTH_URL: 'Agents',
  BACKEND_AUTH_TOKEN: 'Agents',
  NEXUS_REFRESH_MARGIN_SECONDS: 'Background worker',
  NEXUS_REFRESH_JITTER_SECONDS: 'Background worker',
  NEXUS_REFRESH_CONCURRENCY: 'Background worker',
  NEXUS_REFRESH_PROVIDER_CONCURRENCY: 'Background worker',
  NEXUS_REFRESH_LEASE_SECONDS: 'Background worker',
  NEXUS_REFRESH_GIVE_UP_HOURS: 'Background worker',
  NEXUS_WORKER_POLL_MS: 'Background worker',
  NEXUS_AUDIT_BATCH_MAX: 'Audit',
  NEXUS_EVENT_RETENTION_DAYS: 'Background worker',
  NEXUS_AUDIT_RETENTION_DAYS: 'Audit',
  NEXUS_AUDIT_EXPORT_DIR: 'Audit',
};

/** Variables whose values are never echoed in errors or docs. */
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

/** The variable table, in schema order, for generated documentation. */
export function describeEnv(): EnvVarDoc[] {
  const docs: EnvVarDoc[] = [];
  for (const [name, schema] of Object.entries(envSchema.shape)) {
    // The default is whatever the schema makes of an absent value.
    const parsed = (schema as z.ZodType).safeParse(undefined);
    const def = parsed.success ? parsed.data : undefined;
    docs.push({
      name,
      description: schema.description ?? '',
      ...(def === undefined ? {} : { default: Array.isArray(def) ? def.join(',') : String(def) }),
      group: groups[name] ?? 'Other',
      ...(SECRET_VARIABLES.has(name) ? { secret: true } : {}),
    });
  }
  return docs;
}
