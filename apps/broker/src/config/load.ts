import { accessSync, constants } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import type * as z from 'zod';
import { parseProxyRoutes } from './proxy-routes.ts';
import { envSchema, type ParsedEnv, SECRET_VARIABLES } from './schema.ts';
import { decodeBase64Strict, SecretBytes } from './secret-value.ts';

/** Scheme check by parsing, so `HTTP://` is caught like `http://`. */
const isPlainHttp = (url: string | undefined) => {
  if (url === undefined) return false;
  try {
    return new URL(url).protocol === 'http:';
  } catch {
    return false;
  }
};

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

export type RunMode = 'development' | 'production' | 'test';

export interface NamedApiKey {
  readonly name: string;
  readonly key: SecretBytes;
}

export type DatabaseConfig =
  | { readonly kind: 'sqlite'; readonly file: string }
  | { readonly kind: 'postgres'; readonly url: SecretBytes; readonly poolMax: number };

export type VaultAuthConfig =
  | { readonly method: 'token'; readonly token: SecretBytes }
  | {
      readonly method: 'approle';
      readonly roleId: string;
      readonly secretId: SecretBytes;
      readonly mount: string;
    }
  | {
      readonly method: 'kubernetes';
      readonly role: string;
      readonly tokenFile: string;
      readonly mount: string;
    };

/** Where provider credentials live (`SECRET_BACKEND` and its variables). */
export type SecretBackendConfig =
  | { readonly kind: 'internal' }
  | {
      readonly kind: 'hashicorp-vault' | 'openbao';
      readonly addr: string;
      readonly mount: string;
      readonly kvVersion: 1 | 2;
      readonly prefix: string;
      readonly namespace: string | undefined;
      readonly auth: VaultAuthConfig;
    }
  | {
      readonly kind: 'aws-secrets-manager';
      readonly region: string;
      readonly prefix: string;
      readonly endpoint: string | undefined;
    }
  | {
      readonly kind: 'gcp-secret-manager';
      readonly projectId: string;
      readonly prefix: string;
      readonly apiEndpoint: string | undefined;
    };

const secretBytes = (text: string) => new SecretBytes(new TextEncoder().encode(text));

/** Cross-field rules of the secret backend variables; pushes one problem per missing piece. */
function parseSecretBackend(
  e: ParsedEnv,
  mode: RunMode,
  problems: string[],
  cwd: string,
): SecretBackendConfig | undefined {
  const kind = e.SECRET_BACKEND;
  if (kind === 'hashicorp-vault' || kind === 'openbao') {
    const before = problems.length;
    if (e.VAULT_ADDR === undefined)
      problems.push(
        `VAULT_ADDR: required with SECRET_BACKEND=${kind}: the server URL, e.g. https://vault.example.com:8200`,
      );
    else if (
      mode === 'production' &&
      isPlainHttp(e.VAULT_ADDR) &&
      !/^http:\/\/(127\.|localhost|\[::1\])/.test(e.VAULT_ADDR)
    )
      problems.push(
        'VAULT_ADDR: must use https in production (plain http only to a loopback agent or proxy)',
      );
    const approle = e.VAULT_ROLE_ID !== undefined || e.VAULT_SECRET_ID !== undefined;
    const kubernetes = e.VAULT_K8S_ROLE !== undefined;
    const ways = [e.VAULT_TOKEN !== undefined, approle, kubernetes].filter(Boolean).length;
    if (ways > 1)
      problems.push(
        'VAULT_TOKEN: set one way to log in to Vault: VAULT_TOKEN, or VAULT_ROLE_ID with VAULT_SECRET_ID (AppRole), or VAULT_K8S_ROLE (Kubernetes)',
      );
    else if (ways === 0)
      problems.push(
        `VAULT_TOKEN: required with SECRET_BACKEND=${kind}, or set VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole, or VAULT_K8S_ROLE for Kubernetes auth`,
      );
    else if (approle && (e.VAULT_ROLE_ID === undefined || e.VAULT_SECRET_ID === undefined))
      problems.push(
        `${e.VAULT_ROLE_ID === undefined ? 'VAULT_ROLE_ID' : 'VAULT_SECRET_ID'}: AppRole needs both VAULT_ROLE_ID and VAULT_SECRET_ID`,
      );
    else if (kubernetes && !readableFile(resolve(cwd, e.VAULT_K8S_TOKEN_FILE)))
      problems.push(
        `VAULT_K8S_TOKEN_FILE: ${e.VAULT_K8S_TOKEN_FILE} cannot be read; mount the pod's service-account token there (automountServiceAccountToken) or point VAULT_K8S_TOKEN_FILE at it`,
      );
    if (problems.length > before || e.VAULT_ADDR === undefined) return undefined;
    return {
      kind,
      addr: e.VAULT_ADDR.replace(/\/+$/, ''),
      mount: e.VAULT_MOUNT,
      kvVersion: e.VAULT_KV_VERSION === '1' ? 1 : 2,
      prefix: e.VAULT_PATH_PREFIX,
      namespace: e.VAULT_NAMESPACE,
      auth:
        e.VAULT_TOKEN !== undefined
          ? { method: 'token', token: secretBytes(e.VAULT_TOKEN) }
          : e.VAULT_K8S_ROLE !== undefined
            ? {
                method: 'kubernetes',
                role: e.VAULT_K8S_ROLE,
                tokenFile: resolve(cwd, e.VAULT_K8S_TOKEN_FILE),
                mount: e.VAULT_K8S_MOUNT,
              }
            : {
                method: 'approle',
                roleId: e.VAULT_ROLE_ID ?? '',
                secretId: secretBytes(e.VAULT_SECRET_ID ?? ''),
                mount: e.VAULT_APPROLE_MOUNT,
              },
    };
  }
  if (kind === 'aws-secrets-manager') {
    if (e.AWS_REGION === undefined) {
      problems.push('AWS_REGION: required with SECRET_BACKEND=aws-secrets-manager, e.g. us-east-1');
      return undefined;
    }
    return {
      kind,
      region: e.AWS_REGION,
      prefix: e.AWS_SECRET_PREFIX,
      endpoint: e.AWS_ENDPOINT_URL_SECRETS_MANAGER,
    };
  }
  if (kind === 'gcp-secret-manager') {
    if (e.GCP_PROJECT_ID === undefined) {
      problems.push(
        'GCP_PROJECT_ID: required with SECRET_BACKEND=gcp-secret-manager: the project that holds the secrets',
      );
      return undefined;
    }
    return {
      kind,
      projectId: e.GCP_PROJECT_ID,
      prefix: e.GCP_SECRET_PREFIX,
      apiEndpoint: e.GCP_SECRET_MANAGER_ENDPOINT,
    };
  }
  return { kind: 'internal' };
}

/** The validated, frozen configuration handed to `buildContainer`. Nothing else reads the environment. */
export interface Config {
  readonly mode: RunMode;
  readonly dataDir: string;
  readonly logLevel: string;
  readonly http: {
    readonly host: string;
    readonly port: number;
    readonly baseUrl: string;
    readonly redirectPath: string;
    readonly bodyLimit: number;
    readonly trustedProxies: readonly string[];
    readonly allowedCidrs: readonly string[];
    readonly metricsPublic: boolean;
  };
  /** Split mode's admin listener (`ADMIN_HOST`, `ADMIN_PORT`); undefined: one listener. */
  readonly adminListener: { readonly host: string; readonly port: number } | undefined;
  readonly role: 'all' | 'gateway' | 'broker';
  /** Origins allowed to call the browser-facing routes cross-origin; `*` for any. */
  readonly corsAllowedOrigins: readonly string[];
  /** Admin keys on public-only listeners (PUBLIC_LISTENER_ADMIN_KEYS); refused by default. */
  readonly publicListenerAdminKeys: boolean;
  /** The gRPC listener (`GRPC_PORT`, `GRPC_HOST`); undefined when gRPC is off. */
  readonly grpc: { readonly host: string; readonly port: number } | undefined;
  readonly database: DatabaseConfig;
  readonly autoMigrate: boolean;
  readonly redisUrl: SecretBytes | undefined;
  /** Per-client limits on the public surface (http/rate-limit.ts). */
  readonly rateLimits: {
    readonly enabled: boolean;
    readonly windowMs: number;
    readonly limits: Readonly<
      Record<
        'request_connection' | 'callback' | 'token' | 'refresh' | 'capture' | 'login' | 'auth_failure',
        number
      >
    >;
  };
  readonly keys: {
    /** Explicit key ring from the environment, primary first; undefined when keys come from a file. */
    readonly encryptionKeys: readonly SecretBytes[] | undefined;
    readonly stateKey: SecretBytes | undefined;
    /** USER_SECRETS_KEYS / USER_SECRETS_KEY, primary first; undefined when they come from the key file. */
    readonly userSecretsKeys: readonly SecretBytes[] | undefined;
    /** Key file to read (explicit `NEXUS_KEY_FILE`, or the generated development file). */
    readonly keyFile: string | undefined;
    /** Development only: create the key file when it does not exist. */
    readonly generateIfMissing: boolean;
    /** KEY_PROVIDER=transit: the wrapped keys and the Vault that unwraps them (crypto/transit.ts). */
    readonly transit:
      | {
          readonly vault: Extract<SecretBackendConfig, { kind: 'openbao' | 'hashicorp-vault' }>;
          readonly mount: string;
          readonly key: string;
          readonly wrapped: {
            readonly encryption: string[];
            readonly state: string | undefined;
            readonly userSecrets: string[];
          };
        }
      | undefined;
  };
  readonly apiKeys: readonly NamedApiKey[];
  readonly allowedReturnDomains: readonly string[];
  readonly secretBackend: SecretBackendConfig;
  /** The old backend during a migration (`SECRET_BACKEND_FALLBACK`): read when the new one has no copy. */
  readonly secretBackendFallback: SecretBackendConfig | undefined;
  /** `TOKEN_STORE`: where connection credentials are kept (decision 0010). */
  readonly tokenStore: 'database' | 'secret-backend';
  readonly discoveryTtlSeconds: number;
  readonly upstreamTimeoutMs: number;
  readonly refresh: {
    readonly marginMs: number;
    readonly jitterMs: number;
    readonly concurrency: number;
    readonly providerConcurrency: number;
    readonly leaseMs: number;
    readonly giveUpMs: number;
    readonly pollMs: number;
  };
  /** CIDR ranges outbound probes may reach despite being private (see egress/safe-fetch.ts). */
  readonly egressAllowedCidrs: readonly string[];
  /** The in-broker credential proxy (modules/proxy). */
  readonly proxy: {
    readonly routes: ReadonlyMap<string, URL>;
    readonly bodyLimit: number;
    readonly timeoutMs: number;
  };
  readonly auditBatchMax: number;
  readonly agentTokenTtlSeconds: number;
  readonly agentSessionMaxTtlSeconds: number;
  /** Remote verification of opaque user tokens (BACKEND_AUTH_URL), when configured. */
  readonly backendAuth: { readonly url: string; readonly token: SecretBytes | undefined } | undefined;
  readonly auditRetention: { readonly retentionMs: number; readonly exportDir: string };
  /** NEXUS_EVENT_RETENTION_DAYS in milliseconds; 0 keeps events. */
  readonly eventRetentionMs: number;
}

export class ConfigError extends Error {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** A Vault/OpenBao Transit ciphertext: `vault:v<version>:<base64>`. */
const TRANSIT_CIPHERTEXT = /^vault:v\d{1,9}:[A-Za-z0-9+/]{16,2048}={0,2}$/;

const KEY_HINT = 'generate one with `nexus keys generate`';

function decodeKey(name: string, value: string, problems: string[]): SecretBytes | undefined {
  const bytes = decodeBase64Strict(value);
  if (bytes === undefined || bytes.length !== 32) {
    // Never echo the value: it is (meant to be) a secret.
    problems.push(`${name}: must be 32 random bytes encoded as base64 (44 characters); ${KEY_HINT}`);
    return undefined;
  }
  return new SecretBytes(bytes);
}

function checkCidrs(name: string, entries: readonly string[], problems: string[]): void {
  for (const entry of entries) {
    const [addr, prefix, extra] = entry.split('/');
    const family = isIP(addr ?? '');
    const max = family === 6 ? 128 : 32;
    const bits = prefix === undefined ? max : Number(prefix);
    if (family === 0 || extra !== undefined || !Number.isInteger(bits) || bits < 0 || bits > max) {
      problems.push(`${name}: "${entry.slice(0, 64)}" is not an IP address or CIDR range such as 10.0.0.0/8`);
    }
  }
}

const HOST_PATTERN = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

function parseApiKeys(raw: { API_KEY?: string; API_KEYS?: string[] }, problems: string[]): NamedApiKey[] {
  const keys: NamedApiKey[] = [];
  const check = (name: string, key: string, variable: string) => {
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
    keys.push({ name, key: new SecretBytes(new TextEncoder().encode(key)) });
  };
  if (raw.API_KEY !== undefined && raw.API_KEY.length > 0) check('env:API_KEY', raw.API_KEY, 'API_KEY');
  raw.API_KEYS?.forEach((entry, index) => {
    const colon = entry.indexOf(':');
    const named = colon > 0 && /^[A-Za-z0-9_.-]{1,64}$/.test(entry.slice(0, colon));
    check(
      named ? `env:${entry.slice(0, colon)}` : `env:API_KEYS[${index}]`,
      named ? entry.slice(colon + 1) : entry,
      'API_KEYS',
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
function readableFile(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

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
    const shown = SECRET_VARIABLES.has(name) ? '' : ` (got "${String(input[name]).slice(0, 40)}")`;
    problems.push(`${name}: ${describeIssue(result.error.issues[0])}${shown}`);
  }
  const e = parsed as ParsedEnv;
  const mode: RunMode =
    e.NEXUS_ENV ??
    (e.NODE_ENV === 'production' ? 'production' : e.NODE_ENV === 'test' ? 'test' : 'development');
  const dataDir = resolve(cwd, e.NEXUS_DATA_DIR ?? '.nexus');

  // With KEY_PROVIDER=transit the key variables hold Transit ciphertexts, unwrapped at start-up
  // (crypto/transit.ts); otherwise they are the keys themselves.
  const transit = e.KEY_PROVIDER === 'transit';
  const wrapped = {
    encryption: [] as string[],
    state: undefined as string | undefined,
    userSecrets: [] as string[],
  };
  const takeKey = (name: string, value: string, into: SecretBytes[] | string[]): void => {
    if (!transit) {
      const key = decodeKey(name, value, problems);
      if (key) (into as SecretBytes[]).push(key);
    } else if (!TRANSIT_CIPHERTEXT.test(value.trim()))
      problems.push(
        `${name}: with KEY_PROVIDER=transit, a Transit ciphertext (vault:v1:...); make one with \`nexus keys generate --transit\``,
      );
    else (into as string[]).push(value.trim());
  };
  let encryptionKeys: SecretBytes[] | undefined;
  const encryptionValues =
    e.ENCRYPTION_KEYS !== undefined && e.ENCRYPTION_KEYS.length > 0
      ? e.ENCRYPTION_KEYS.map((v, i) => [`ENCRYPTION_KEYS[${i}]`, v] as const)
      : e.ENCRYPTION_KEY !== undefined
        ? [['ENCRYPTION_KEY', e.ENCRYPTION_KEY] as const]
        : undefined;
  if (encryptionValues !== undefined) {
    encryptionKeys = [];
    for (const [name, value] of encryptionValues)
      takeKey(name, value, transit ? wrapped.encryption : encryptionKeys);
  }
  let stateKey: SecretBytes | undefined;
  if (e.STATE_KEY !== undefined) {
    const into: SecretBytes[] = [];
    takeKey('STATE_KEY', e.STATE_KEY, transit ? [] : into);
    stateKey = into[0];
    if (transit && TRANSIT_CIPHERTEXT.test(e.STATE_KEY.trim())) wrapped.state = e.STATE_KEY.trim();
  }
  let userSecretsKeys: SecretBytes[] | undefined;
  const userSecretValues =
    e.USER_SECRETS_KEYS !== undefined && e.USER_SECRETS_KEYS.length > 0
      ? e.USER_SECRETS_KEYS.map((v, i) => [`USER_SECRETS_KEYS[${i}]`, v] as const)
      : e.USER_SECRETS_KEY !== undefined
        ? [['USER_SECRETS_KEY', e.USER_SECRETS_KEY] as const]
        : undefined;
  if (userSecretValues !== undefined) {
    userSecretsKeys = [];
    for (const [name, value] of userSecretValues)
      takeKey(name, value, transit ? wrapped.userSecrets : userSecretsKeys);
  }
  let transitConfig: Config['keys']['transit'];
  if (transit) {
    // Missing keys are reported when they are unwrapped (crypto/transit.ts): `nexus keys generate
    // --transit`, which makes them, needs this configuration without them.
    if (e.NEXUS_KEY_FILE !== undefined)
      problems.push(
        'NEXUS_KEY_FILE: not used with KEY_PROVIDER=transit; give the wrapped keys in ENCRYPTION_KEY(S) and STATE_KEY',
      );
    const vault = parseSecretBackend({ ...e, SECRET_BACKEND: 'openbao' }, mode, problems, cwd);
    if (vault !== undefined && (vault.kind === 'openbao' || vault.kind === 'hashicorp-vault'))
      transitConfig = { vault, mount: e.TRANSIT_MOUNT, key: e.TRANSIT_KEY, wrapped };
    // The unwrapped keys come later (crypto/transit.ts); nothing here is a key.
    encryptionKeys = undefined;
    userSecretsKeys = undefined;
  }
  const explicitKeyFile =
    e.NEXUS_KEY_FILE === undefined || transit ? undefined : resolve(cwd, e.NEXUS_KEY_FILE);

  if (mode === 'production' && explicitKeyFile === undefined && !transit) {
    if (encryptionKeys === undefined) {
      problems.push(
        `ENCRYPTION_KEY: required in production (or ENCRYPTION_KEYS, or NEXUS_KEY_FILE); ${KEY_HINT} and keep it safe: losing it makes every stored secret unreadable`,
      );
    }
    if (e.STATE_KEY === undefined)
      problems.push(`STATE_KEY: required in production (or NEXUS_KEY_FILE); ${KEY_HINT}`);
  }

  const apiKeys = parseApiKeys(e, problems);
  checkCidrs('ALLOWED_CIDRS', e.ALLOWED_CIDRS ?? [], problems);
  checkCidrs('TRUSTED_PROXIES', e.TRUSTED_PROXIES ?? [], problems);
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
  const proxyRoutes = parseProxyRoutes('NEXUS_PROXY_ROUTES', e.NEXUS_PROXY_ROUTES ?? [], problems, {
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
    http: {
      host: e.HOST,
      port: e.PORT,
      baseUrl: (e.BASE_URL ?? `http://${hostForUrl}:${e.PORT}`).replace(/\/+$/, ''),
      redirectPath: e.REDIRECT_PATH,
      bodyLimit: e.NEXUS_BODY_LIMIT_BYTES,
      trustedProxies: e.TRUSTED_PROXIES,
      allowedCidrs: e.ALLOWED_CIDRS,
      metricsPublic: e.NEXUS_METRICS_PUBLIC,
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
      keyFile: transit
        ? undefined
        : (explicitKeyFile ??
          (encryptionKeys === undefined || stateKey === undefined
            ? resolve(dataDir, 'keys.json')
            : undefined)),
      generateIfMissing: mode !== 'production' && explicitKeyFile === undefined && !transit,
      transit: transitConfig,
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
      bodyLimit: e.NEXUS_PROXY_BODY_LIMIT_BYTES,
      timeoutMs: e.NEXUS_PROXY_TIMEOUT_SECONDS * 1000,
    },
    refresh: {
      marginMs: e.NEXUS_REFRESH_MARGIN_SECONDS * 1000,
      jitterMs: e.NEXUS_REFRESH_JITTER_SECONDS * 1000,
      concurrency: e.NEXUS_REFRESH_CONCURRENCY,
      providerConcurrency: e.NEXUS_REFRESH_PROVIDER_CONCURRENCY,
      leaseMs: e.NEXUS_REFRESH_LEASE_SECONDS * 1000,
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
  };
  return deepFreeze(config);
}
