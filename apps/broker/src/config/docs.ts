import type * as z from 'zod';
import { renderOriginalVariables } from './original-variables.ts';
import { envSchema, SECRET_VARIABLES } from './schema.ts';

export interface EnvVarDoc {
  readonly name: string;
  readonly description: string;
  readonly default?: string;
  readonly group: string;
  readonly secret?: boolean;
}

/** The documentation group of each variable (a heading in docs/configuration.md). */
const groups: Record<string, string> = {
  NEXUS_ENV: 'General',
  NODE_ENV: 'General',
  NEXUS_DATA_DIR: 'General',
  LOG_LEVEL: 'General',
  LOG_FORMAT: 'General',
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
  NEXUS_HTTP_HEADERS_TIMEOUT_SECONDS: 'HTTP',
  NEXUS_HTTP_REQUEST_TIMEOUT_SECONDS: 'HTTP',
  NEXUS_HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: 'HTTP',
  NEXUS_METRICS_PUBLIC: 'HTTP',
  DATABASE_URL: 'Storage',
  DATABASE_POOL_MAX: 'Storage',
  DATABASE_CONNECT_TIMEOUT_MS: 'Storage',
  DATABASE_QUERY_TIMEOUT_MS: 'Storage',
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
  NEXUS_MCP_GATEWAY_ROUTES: 'Credential proxy',
  NEXUS_PROXY_BODY_LIMIT_BYTES: 'Credential proxy',
  NEXUS_PROXY_TIMEOUT_SECONDS: 'Credential proxy',
  NEXUS_AGENT_TOKEN_TTL_SECONDS: 'Agents',
  NEXUS_AGENT_SESSION_MAX_TTL_SECONDS: 'Agents',
  BACKEND_AUTH_URL: 'Agents',
  NEXUS_MCP_ISSUERS: 'Agents',
  BACKEND_AUTH_TOKEN: 'Agents',
  NEXUS_REFRESH_MARGIN_SECONDS: 'Background worker',
  NEXUS_REFRESH_JITTER_SECONDS: 'Background worker',
  NEXUS_REFRESH_CONCURRENCY: 'Background worker',
  NEXUS_REFRESH_PROVIDER_CONCURRENCY: 'Background worker',
  NEXUS_REFRESH_LEASE_SECONDS: 'Background worker',
  NEXUS_REFRESH_READ_WAIT_MS: 'Background worker',
  NEXUS_REFRESH_GIVE_UP_HOURS: 'Background worker',
  NEXUS_WORKER_POLL_MS: 'Background worker',
  NEXUS_AUDIT_BATCH_MAX: 'Audit',
  NEXUS_EVENT_RETENTION_DAYS: 'Background worker',
  NEXUS_AUDIT_RETENTION_DAYS: 'Audit',
  NEXUS_AUDIT_EXPORT_DIR: 'Audit',
  NEXUS_CONNECT_SESSION_TTL_SECONDS: 'Hosted pages',
  NEXUS_CONNECT_BRAND_NAME: 'Hosted pages',
  NEXUS_CONNECT_BRAND_LOGO_URL: 'Hosted pages',
  NEXUS_CONNECT_BRAND_COLOR: 'Hosted pages',
  NEXUS_CONNECT_VERIFIER_URL: 'Hosted pages',
  NEXUS_CONNECT_VERIFIER_REQUIRED: 'Hosted pages',
};

/** Variables whose values are never echoed in errors or docs. */
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

/** Renders `docs/configuration.md` from the schema, so the reference cannot drift from the code. */
export function renderConfigDocs(): string {
  const vars = describeEnv();
  const groups = [...new Set(vars.map((v) => v.group))];
  const escapeCell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');
  const lines = [
    '# Configuration reference',
    '',
    '<!-- Generated from apps/broker/src/config/schema.ts by `npm run docs:config`. Do not edit by hand. -->',
    '',
    'The broker reads its configuration from environment variables once, at start-up. Every problem',
    'is reported at once, each naming the variable and the fix; the broker does not start until all',
    'are fixed. An empty value counts as unset. Run `nexus doctor` to check a configuration.',
    '',
    'Variables marked **secret** are never printed: not in errors, logs or `doctor` output.',
    '',
  ];
  for (const group of groups) {
    lines.push(`## ${group}`, '', '| Variable | Default | Description |', '|---|---|---|');
    for (const v of vars.filter((x) => x.group === group)) {
      const name = `\`${v.name}\`${v.secret ? ' (**secret**)' : ''}`;
      const def = v.default === undefined ? '—' : v.default === '' ? '(empty)' : `\`${v.default}\``;
      lines.push(`| ${name} | ${def} | ${escapeCell(v.description)} |`);
    }
    lines.push('');
  }
  lines.push(
    '## Run modes',
    '',
    '- **development** (default): keys are generated into `NEXUS_DATA_DIR/keys.json` (mode 0600) on first start, with a loud warning; a one-time admin API key is printed; `http://localhost` URLs are accepted for providers and return URLs.',
    '- **production** (`NEXUS_ENV=production` or `NODE_ENV=production`): the broker refuses to start without `ENCRYPTION_KEY` (or `ENCRYPTION_KEYS`, or `NEXUS_KEY_FILE`), `STATE_KEY` and an https `BASE_URL`, and never generates keys. Provider URLs must be https.',
    '- **test**: like development, for automated tests.',
    '',
  );
  return lines.join('\n');
}

const ORIGINAL_START = '<!-- original-variables:start -->';
const ORIGINAL_END = '<!-- original-variables:end -->';

/**
 * docs/migrating.md with the block between its `original-variables` markers regenerated from
 * `original-variables.ts`; the rest of the guide is written by hand and kept as it is.
 */
export function renderMigratingDocs(current: string): string {
  const start = current.indexOf(ORIGINAL_START);
  const end = current.indexOf(ORIGINAL_END);
  if (start === -1 || end < start)
    throw new Error(`docs/migrating.md must hold ${ORIGINAL_START} and ${ORIGINAL_END}, in that order`);
  return `${current.slice(0, start + ORIGINAL_START.length)}\n\n${renderOriginalVariables()}\n\n${current.slice(end)}`;
}
