import type { AdminScope } from '../auth/principal.ts';
import type { TransitKeysConfig } from './keys-config.ts';
import type { McpIssuer } from './mcp-issuers.ts';
import type { SecretBackendConfig } from './secret-backend-config.ts';
import type { SecretBytes } from './secret-value.ts';

/** The shape of the broker's configuration: what `loadConfig` (load.ts) answers. */

export type RunMode = 'development' | 'production' | 'test';

export interface NamedApiKey {
  readonly name: string;
  readonly key: SecretBytes;
  /** `API_KEYS=name@scope:key`; `full` without one (and always for `API_KEY`). */
  readonly scope: AdminScope;
}

export type DatabaseConfig =
  | { readonly kind: 'sqlite'; readonly file: string }
  | {
      readonly kind: 'postgres';
      readonly url: SecretBytes;
      readonly poolMax: number;
      /** DATABASE_CONNECT_TIMEOUT_MS: a new connection, or a free pooled one. */
      readonly connectTimeoutMs: number;
      /** DATABASE_QUERY_TIMEOUT_MS: statement_timeout, and the client-side wait for an answer. */
      readonly queryTimeoutMs: number;
    };

/** The validated, frozen configuration handed to `buildContainer`. Nothing else reads the environment. */
export interface Config {
  readonly mode: RunMode;
  readonly dataDir: string;
  readonly logLevel: string;
  /** `auto`: readable on a terminal outside production (http/logger.ts), JSON otherwise. */
  readonly logFormat: 'auto' | 'json' | 'pretty';
  readonly http: {
    readonly host: string;
    readonly port: number;
    readonly baseUrl: string;
    readonly redirectPath: string;
    readonly bodyLimit: number;
    readonly trustedProxies: readonly string[];
    readonly allowedCidrs: readonly string[];
    readonly metricsPublic: boolean;
    /** Listener timeouts (http/timeouts.ts). */
    readonly timeouts: {
      readonly headersMs: number;
      readonly requestMs: number;
      readonly keepAliveMs: number;
    };
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
    readonly transit: TransitKeysConfig | undefined;
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
    /** How long a read whose token still works waits for its own refresh. */
    readonly readWaitMs: number;
    readonly giveUpMs: number;
    readonly pollMs: number;
  };
  /** CIDR ranges outbound probes may reach despite being private (see egress/safe-fetch.ts). */
  readonly egressAllowedCidrs: readonly string[];
  /** The in-broker credential proxy (modules/proxy). */
  readonly proxy: {
    readonly routes: ReadonlyMap<string, URL>;
    /**
     * Routes the MCP gateway serves (`/mcp-gateway/<name>`): an MCP endpoint of their own, or null
     * for the proxy route of that name.
     */
    readonly mcpGatewayRoutes: ReadonlyMap<string, URL | null>;
    /** Trusted issuers whose tokens `/mcp` takes directly, and the agent their callers act as. */
    readonly mcpIssuers: readonly McpIssuer[];
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
  /** The hosted connect pages (modules/connect): session lifetime and branding. */
  readonly connect: {
    readonly sessionTtlMs: number;
    readonly brand: { readonly name: string; readonly logoUrl: string | undefined; readonly color: string };
    /** NEXUS_CONNECT_VERIFIER_URL / _REQUIRED: the confirmation step (decision 0017); undefined: off. */
    readonly verifier?: { readonly url: string; readonly required: boolean } | undefined;
  };
}
