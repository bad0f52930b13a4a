/**
 * The environment variables of the original Go Nexus (its broker, its REST/gRPC gateway and its
 * sidecar), for teams moving over (issue #25). Two tables:
 *
 * - `ORIGINAL_ONLY`: variables Nexus does not read. Each one that is set gets a start-up warning
 *   saying what to do instead (`nexus serve`, `nexus worker`); the warning names the variable,
 *   never its value, which may be a secret.
 * - `SHARED`: variables Nexus reads under the same name, with what differs. They never warn.
 *
 * docs/migrating.md shows both tables, generated from here (`npm run docs:config`). A test checks
 * that no `ORIGINAL_ONLY` name is read by Nexus and that every `SHARED` name is.
 */

/** Which of the original's programs read the variable. */
export type OriginalProgram = 'broker' | 'gateway' | 'sidecar';

export interface OriginalOnlyVariable {
  readonly name: string;
  readonly readBy: readonly OriginalProgram[];
  /** What takes its place in Nexus (Markdown): a variable, "always on", or "no longer exists". */
  readonly nexus: string;
  /** What to do instead (Markdown): the start-up warning, and the guide's last column. */
  readonly instead: string;
}

export interface SharedVariable {
  readonly name: string;
  readonly readBy: readonly OriginalProgram[];
  /** The Nexus command that reads it: the broker (`serve`) or the standalone proxy (`proxy`). */
  readonly readByNexus: 'serve' | 'proxy';
  /** What differs from the original (Markdown). */
  readonly differences: string;
}

const GONE = 'no longer exists';

export const ORIGINAL_ONLY: readonly OriginalOnlyVariable[] = [
  {
    name: 'REQUIRE_API_KEY',
    readBy: ['broker'],
    nexus: 'always on',
    instead:
      'Nexus always asks for a credential, on the agent API as well: an admin key (`X-API-Key` or `Authorization: Bearer`) or an agent token. Create keys with `nexus admin-keys create`, or list them in `API_KEYS`.',
  },
  {
    name: 'API_KEY_FILE',
    readBy: ['broker'],
    nexus: GONE,
    instead:
      'Admin keys live in the database: `nexus admin-keys create --name NAME` prints one, `nexus admin-keys revoke NAME` ends it at the next request, without a restart. Keys that must come from the environment go in `API_KEYS`.',
  },
  {
    name: 'API_KEYS_FILE',
    readBy: ['broker'],
    nexus: GONE,
    instead:
      'Admin keys live in the database: `nexus admin-keys create --name NAME` prints one, `nexus admin-keys revoke NAME` ends it at the next request, without a restart. Keys that must come from the environment go in `API_KEYS`.',
  },
  {
    name: 'API_KEY_RELOAD_INTERVAL',
    readBy: ['broker'],
    nexus: GONE,
    instead:
      'Nothing is reloaded from files: keys made with `nexus admin-keys create` work, and stop working once revoked, from the next request.',
  },
  {
    name: 'REQUIRE_ALLOWLIST',
    readBy: ['broker'],
    nexus: '`ALLOWED_CIDRS`, enforced whenever set',
    instead:
      "Nexus applies `ALLOWED_CIDRS` to admin keys whenever it is set, with no switch. To keep `REQUIRE_ALLOWLIST=true` with the original's default list, set `ALLOWED_CIDRS=127.0.0.1/32,::1/128`; if the allow-list was off, leave `ALLOWED_CIDRS` unset.",
  },
  {
    name: 'ENFORCE_RETURN_URL',
    readBy: ['broker'],
    nexus: 'always on: `ALLOWED_RETURN_DOMAINS`',
    instead:
      'Return URLs are always checked against `ALLOWED_RETURN_DOMAINS` (exact hosts and `*.suffix`, as in the original). An empty list allows none (loopback only outside production): list your application hosts there.',
  },
  {
    name: 'ENFORCE_DB_SSL',
    readBy: ['broker'],
    nexus: '`sslmode` in `DATABASE_URL`',
    instead:
      'Put TLS in the URL itself: `DATABASE_URL=postgres://...?sslmode=verify-full` checks the server certificate and host name; add `&sslrootcert=/path/to/ca.pem` for a private CA.',
  },
  {
    name: 'DB_SSLMODE',
    readBy: ['broker'],
    nexus: '`sslmode` in `DATABASE_URL`',
    instead:
      'Add `sslmode=` to `DATABASE_URL`. node-postgres treats `prefer`, `require` and `verify-ca` as `verify-full` (certificate and host name checked); `disable` turns TLS off.',
  },
  {
    name: 'DB_SSLROOTCERT',
    readBy: ['broker'],
    nexus: '`sslrootcert` in `DATABASE_URL`',
    instead: 'Add `sslrootcert=/path/to/ca.pem` to `DATABASE_URL` (a file path, read by node-postgres).',
  },
  {
    name: 'AUTO_MIGRATE',
    readBy: ['broker'],
    nexus: '`NEXUS_AUTO_MIGRATE`',
    instead:
      'Same meaning and default (on). With `NEXUS_AUTO_MIGRATE=false`, run `nexus migrate` as a separate step.',
  },
  {
    name: 'MIGRATIONS_DIR',
    readBy: ['broker'],
    nexus: GONE,
    instead:
      'Nexus ships its migrations inside the program and checks them against a ledger (`nexus migrate`, `nexus migrate --status`): there is no directory to point at.',
  },
  {
    name: 'NEXUS_ALLOW_PRIVATE_PROBE_TARGETS',
    readBy: ['broker'],
    nexus: '`NEXUS_EGRESS_ALLOWED_CIDRS`',
    instead:
      'Allow only the ranges you need, e.g. `NEXUS_EGRESS_ALLOWED_CIDRS=127.0.0.1/32`. It covers every outbound call of the broker (providers, credential probes, webhooks, the proxy), not only probes.',
  },
  {
    name: 'BROKER_API_KEY',
    readBy: ['gateway'],
    nexus: GONE,
    instead:
      'There is no gateway-to-broker call left to authenticate: one Nexus process serves both APIs (or the `gateway` and `broker` roles share the database). Agents authenticate to Nexus themselves, with an agent token or an admin key of scope `agent`.',
  },
  {
    name: 'PORT_HTTP',
    readBy: ['gateway'],
    nexus: '`PORT`',
    instead: 'The REST API, agent and operator routes alike, is served on `PORT` (and `HOST`).',
  },
  {
    name: 'PORT_GRPC',
    readBy: ['gateway'],
    nexus: '`GRPC_PORT`',
    instead:
      'gRPC listens only when `GRPC_PORT` is set (the original gateway defaulted to 9090): set `GRPC_PORT=9090` to keep that port. `GRPC_HOST` defaults to `HOST`.',
  },
  {
    name: 'GO_ENV',
    readBy: ['gateway'],
    nexus: '`NEXUS_ENV`',
    instead:
      '`NEXUS_ENV=production` (or `NODE_ENV=production`) refuses to start without explicit keys and an https `BASE_URL`.',
  },
  {
    name: 'RATE_LIMIT_RESOLVE_RPM',
    readBy: ['gateway'],
    nexus: '`RATE_LIMIT_TOKEN_RPM`',
    instead:
      '`/v1/resolve` counts as a token read, in `RATE_LIMIT_TOKEN_RPM` (default 6000 per client per minute).',
  },
  {
    name: 'GATEWAY_BASE_URL',
    readBy: ['sidecar'],
    nexus: '`NEXUS_URL` of `nexus proxy`',
    instead:
      'The broker serves the credential proxy itself, at `/proxy/ROUTE/...`. A proxy of its own next to the agents is `nexus proxy`, which takes the broker address as `NEXUS_URL` (docs/proxy.md).',
  },
];

export const SHARED: readonly SharedVariable[] = [
  {
    name: 'PORT',
    readBy: ['broker', 'gateway', 'sidecar'],
    readByNexus: 'serve',
    differences:
      'One listener serves the operator API, the agent API and the OAuth callback (default 8080; the original gateway used 8090). `nexus proxy` listens on `PROXY_PORT` (default 8081), not `PORT`.',
  },
  {
    name: 'DATABASE_URL',
    readBy: ['broker'],
    readByNexus: 'serve',
    differences:
      'A `postgres://` or `postgresql://` URL. Give Nexus a database of its own: both schemas have `connections`, `audit_events` and `provider_aliases` tables. The original database is read by `nexus import original --database-url`. Unset: SQLite in `NEXUS_DATA_DIR`.',
  },
  {
    name: 'REDIS_URL',
    readBy: ['broker', 'gateway'],
    readByNexus: 'serve',
    differences:
      'Optional: it holds only the rate-limit and failed-authentication counters that replicas share.',
  },
  {
    name: 'ENCRYPTION_KEY',
    readBy: ['broker'],
    readByNexus: 'serve',
    differences:
      "Same format (32 bytes, base64), other ciphertexts: Nexus seals with its own envelope encryption. The importer takes the original's key as `--encryption-key`; Nexus's own key can be a new one (`nexus keys generate`).",
  },
  {
    name: 'STATE_KEY',
    readBy: ['broker', 'gateway'],
    readByNexus: 'serve',
    differences:
      'Same format. A consent started on the original cannot finish on Nexus: a user in the middle of one at the cut-over starts again.',
  },
  {
    name: 'API_KEY',
    readBy: ['broker'],
    readByNexus: 'serve',
    differences:
      "At least 24 characters (the original's example `nexus-admin-key` stops the start). Sent as `X-API-Key`, as before, or `Authorization: Bearer`; scope `full`.",
  },
  {
    name: 'API_KEYS',
    readBy: ['broker'],
    readByNexus: 'serve',
    differences:
      'Comma-separated, as before; an entry may also be `name:key` or `name@scope:key` (scope `full`, `read` or `agent`). Each key at least 24 characters.',
  },
  {
    name: 'BASE_URL',
    readBy: ['broker'],
    readByNexus: 'serve',
    differences:
      'Keep the public URL: the redirect URI registered at each provider (`BASE_URL` + `REDIRECT_PATH`) stays valid. Required, and https, in production.',
  },
  {
    name: 'REDIRECT_PATH',
    readBy: ['broker'],
    readByNexus: 'serve',
    differences: 'Same (default `/auth/callback`).',
  },
  {
    name: 'ALLOWED_CIDRS',
    readBy: ['broker'],
    readByNexus: 'serve',
    differences:
      'Enforced whenever set (there is no `REQUIRE_ALLOWLIST`), on admin keys; agent tokens are not limited by address. Unset: no restriction.',
  },
  {
    name: 'ALLOWED_RETURN_DOMAINS',
    readBy: ['broker'],
    readByNexus: 'serve',
    differences:
      'Same syntax, always enforced. Hosts only (no scheme or port); https return URLs in production; loopback is allowed outside production without being listed.',
  },
  {
    name: 'CORS_ALLOWED_ORIGINS',
    readBy: ['gateway'],
    readByNexus: 'serve',
    differences:
      'Empty by default (the original gateway allowed two localhost origins). Applies only to the browser-facing routes (capture, `/.well-known/*`, `/health`), never with credentials.',
  },
  {
    name: 'RATE_LIMIT_ENABLED',
    readBy: ['gateway'],
    readByNexus: 'serve',
    differences:
      'On by default (the original was off). Counted per process without `REDIS_URL`, shared through Redis with it.',
  },
  {
    name: 'RATE_LIMIT_REQUEST_CONNECTION_RPM',
    readBy: ['gateway'],
    readByNexus: 'serve',
    differences:
      'Default 60 (original 10), per client (agent, admin key, else address) rather than per `workspace_id`; `/auth/consent-spec` counts too.',
  },
  {
    name: 'RATE_LIMIT_CALLBACK_RPM',
    readBy: ['gateway'],
    readByNexus: 'serve',
    differences: 'Default 120 (original 20), per client address.',
  },
  {
    name: 'RATE_LIMIT_TOKEN_RPM',
    readBy: ['gateway'],
    readByNexus: 'serve',
    differences:
      'Default 6000 (original 60), per client; covers `/v1/resolve`. Refreshes have their own `RATE_LIMIT_REFRESH_RPM`.',
  },
  {
    name: 'GRPC_PORT',
    readBy: ['gateway'],
    readByNexus: 'serve',
    differences:
      "The name the original's deployment guide uses (its binary read `PORT_GRPC`). No gRPC listener when unset.",
  },
  {
    name: 'BROKER_BASE_URL',
    readBy: ['gateway'],
    readByNexus: 'proxy',
    differences:
      'Read only by `nexus proxy`, as another name for `NEXUS_URL`. `nexus serve` needs no broker address.',
  },
  {
    name: 'NEXUS_ROUTES',
    readBy: ['sidecar'],
    readByNexus: 'proxy',
    differences:
      "Read by `nexus proxy`, same `name=https://base` format. The broker's own proxy takes `NEXUS_PROXY_ROUTES`, or a provider's `api_base_url`.",
  },
  {
    name: 'TOKEN_CACHE_TTL',
    readBy: ['sidecar'],
    readByNexus: 'proxy',
    differences: 'Read by `nexus proxy`: whole seconds (default 60), not a duration (`5m` is refused).',
  },
  {
    name: 'REQUEST_BODY_LIMIT',
    readBy: ['sidecar'],
    readByNexus: 'proxy',
    differences:
      "Read by `nexus proxy`: bytes (default 10485760), not a size such as `10MiB`. The broker's own proxy uses `NEXUS_PROXY_BODY_LIMIT_BYTES`.",
  },
];

export interface OriginalVariableWarning {
  readonly variable: string;
  /** What takes its place in Nexus, plain text. */
  readonly nexus: string;
  readonly message: string;
}

const plain = (markdown: string) => markdown.replaceAll('`', '');

/**
 * One warning per variable of the original that is set (an empty value counts as unset, as in
 * `loadConfig`) and that Nexus does not read. Reads only the names in `env`; a warning never
 * carries a value.
 */
export function originalVariableWarnings(
  env: Readonly<Record<string, string | undefined>>,
): OriginalVariableWarning[] {
  return ORIGINAL_ONLY.filter(({ name }) => env[name] !== undefined && env[name] !== '').map((v) => ({
    variable: v.name,
    nexus: plain(v.nexus),
    message: `${v.name} is a setting of the original Nexus (${v.readBy.join(', ')}) and is ignored. ${v.instead} See docs/migrating.md.`,
  }));
}

/** A Markdown table whose columns are padded as the repository's formatter (Biome) writes them. */
function table(header: readonly string[], rawRows: readonly (readonly string[])[]): string[] {
  const rows = rawRows.map((r) => r.map((c) => c.replaceAll('|', '\\|')));
  const widths = header.map((h, i) => Math.max(3, h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

/** The two tables for docs/migrating.md, between its `original-variables` markers. */
export function renderOriginalVariables(): string {
  const programs = (p: readonly OriginalProgram[]) => p.join(', ');
  return [
    '<!-- Generated from apps/broker/src/config/original-variables.ts by `npm run docs:config`. Do not edit by hand. -->',
    '',
    'Read by Nexus under the same name (no warning), with what differs:',
    '',
    ...table(
      ['Variable', 'Read by the original', 'Read by Nexus', 'What differs'],
      SHARED.map((v) => [
        `\`${v.name}\``,
        programs(v.readBy),
        v.readByNexus === 'serve' ? '`nexus serve`' : '`nexus proxy`',
        v.differences,
      ]),
    ),
    '',
    'Not read by Nexus: each one that is set is named in a start-up warning (never its value) saying what to do instead:',
    '',
    ...table(
      ['Variable', 'Read by the original', 'In Nexus', 'What to do instead'],
      ORIGINAL_ONLY.map((v) => [`\`${v.name}\``, programs(v.readBy), v.nexus, v.instead]),
    ),
  ].join('\n');
}
