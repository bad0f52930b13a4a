import { Gauge } from 'prom-client';
import type { Config } from './config/load.ts';
import { createConsentParts } from './consent-parts.ts';
import { type ResolvedKeys, resolveKeys } from './crypto/key-file.ts';
import { type Database, openDatabase } from './db/client.ts';
import { identityProviderCidrs } from './egress/endpoint-rules.ts';
import { createGuardedFetch } from './egress/guarded-fetch.ts';
import { joseFetch } from './egress/jose-fetch.ts';
import { createSafeFetch } from './egress/safe-fetch.ts';
import { createMetrics, type Metrics } from './http/metrics.ts';
import { createOriginalMetrics } from './http/original-metrics.ts';
import { createRateLimiter, type RateLimiter } from './http/rate-limit.ts';
import { type AdminKeysService, createAdminKeysService } from './modules/admin-keys/admin-keys.service.ts';
import { createAdminKeysStore } from './modules/admin-keys/admin-keys.store.ts';
import { type AgentsService, createAgentsService } from './modules/agents/agents.service.ts';
import { createAgentsStore } from './modules/agents/agents.store.ts';
import { type CustomScopes, createCustomScopes } from './modules/agents/custom-scopes.ts';
import { principalAccess } from './modules/agents/grants.ts';
import { createSigningKeysStore } from './modules/agents/signing-keys.store.ts';
import { createSigningKeys, type SigningKeys } from './modules/agents/signing-keys.ts';
import { createAuditRetention } from './modules/audit/audit.retention.ts';
import { type AuditService, createAuditService } from './modules/audit/audit.service.ts';
import { createAuditStore } from './modules/audit/audit.store.ts';
import { type BrokersStore, createBrokersStore } from './modules/brokers/brokers.store.ts';
import { createKeyRingCheck, type KeyRingCheck } from './modules/brokers/key-ring-check.ts';
import { type CatalogService, createCatalogService } from './modules/catalog/catalog.service.ts';
import type { ConnectService } from './modules/connect/connect.service.ts';
import { createConnectStore } from './modules/connect/connect.store.ts';
import {
  type ConnectionsService,
  createConnectionsService,
} from './modules/connections/connections.service.ts';
import { createConnectionsStore } from './modules/connections/connections.store.ts';
import { createCredentialStore } from './modules/connections/credential-store.ts';
import { type ConnectionsMaintenance, createMaintenance } from './modules/connections/maintenance.ts';
import { createRefreshSchedule } from './modules/connections/refresh-schedule.ts';
import type { CaptureService } from './modules/consent/capture.service.ts';
import type { ConsentService } from './modules/consent/consent.service.ts';
import { createConsentStore } from './modules/consent/consent.store.ts';
import { createDeliveriesStore } from './modules/events/deliveries.store.ts';
import { createWebhookMetrics } from './modules/events/events.metrics.ts';
import { createEventsService, type EventsService } from './modules/events/events.service.ts';
import { createEventsStore } from './modules/events/events.store.ts';
import { createWebhookDelivery, type WebhookDelivery } from './modules/events/webhook-delivery.ts';
import { createWebhooksService, type WebhooksService } from './modules/events/webhooks.service.ts';
import { createWebhooksStore } from './modules/events/webhooks.store.ts';
import { createHousekeeping, type Housekeeping } from './modules/housekeeping/housekeeping.ts';
import { createDiscovery, type Discovery } from './modules/providers/discovery.ts';
import { oauthClientFor } from './modules/providers/oauth-client.ts';
import { createProvidersService, type ProvidersService } from './modules/providers/providers.service.ts';
import { createProvidersStore } from './modules/providers/providers.store.ts';
import { createSecretBackend } from './modules/secrets/secret-backend.factory.ts';
import type { SecretBackend } from './modules/secrets/secret-backend.ts';
import type { OnBehalfOf } from './modules/token-exchange/obo.ts';
import { createSessionsStore } from './modules/token-exchange/sessions.store.ts';
import type { AgentSessions } from './modules/token-exchange/sessions.ts';
import type { TokenExchange } from './modules/token-exchange/token-exchange.ts';
import {
  createTrustedIssuersService,
  type TrustedIssuersService,
} from './modules/token-exchange/trusted-issuers.service.ts';
import { createTrustedIssuersStore } from './modules/token-exchange/trusted-issuers.store.ts';
import {
  createMaintenance as createUserSecretsMaintenance,
  type UserSecretsMaintenance,
} from './modules/user-secrets/maintenance.ts';
import { createUserSecrets, type UserSecrets } from './modules/user-secrets/user-secrets.service.ts';
import { createUserSecretsStore } from './modules/user-secrets/user-secrets.store.ts';
import { createRefreshWorker, type RefreshWorker } from './modules/worker/refresh-worker.ts';
import { createRefreshMetrics } from './modules/worker/worker.metrics.ts';
import { createTokenExchangeParts } from './token-exchange-parts.ts';

/** Every long-lived object of a broker process. Built here and nowhere else. */
export interface Container {
  readonly config: Config;
  readonly keys: ResolvedKeys;
  readonly db: Database;
  /** Running broker processes and their key rings (decision 0013). */
  readonly brokers: BrokersStore;
  /** /ready's `key_ring` check: does this process hold every key the others write with? */
  readonly keyRingCheck: KeyRingCheck;
  readonly audit: AuditService;
  readonly adminKeys: AdminKeysService;
  readonly secrets: SecretBackend;
  /** The old backend while migrating (`SECRET_BACKEND_FALLBACK`), read when `secrets` has no copy. */
  readonly secretsFallback: SecretBackend | undefined;
  readonly discovery: Discovery;
  readonly providers: ProvidersService;
  /** The provider catalogue (catalog/providers/), read on first use. */
  readonly catalog: CatalogService;
  readonly connections: ConnectionsService;
  /** Row-level connection maintenance for the CLI (rewrap, key reports, token migration, import). */
  readonly connectionsMaintenance: ConnectionsMaintenance;
  readonly consent: ConsentService;
  readonly capture: CaptureService;
  /** Hosted connect sessions (`/v1/connect-sessions`, the `/connect/*` pages). */
  readonly connect: ConnectService;
  readonly housekeeping: Housekeeping;
  readonly signingKeys: SigningKeys;
  readonly agents: AgentsService;
  readonly customScopes: CustomScopes;
  /** Identity providers whose user tokens on-behalf-of accepts; `verifyUserToken` checks one. */
  readonly trustedIssuers: TrustedIssuersService;
  readonly sessions: AgentSessions;
  /** Users' own secrets (`/api/v2/secrets`), sealed with the user-secrets key ring. */
  readonly userSecrets: UserSecrets;
  /** What the key reports read of user secrets (the key ids of the stored versions). */
  readonly userSecretsMaintenance: UserSecretsMaintenance;
  readonly onBehalfOf: OnBehalfOf;
  /** RFC 8693 token exchange at `POST /oauth/token`: a user's token → an on-behalf-of session token. */
  readonly tokenExchange: TokenExchange;
  /** Background refresh of due OAuth connections; the worker runner calls `start`, tests `runOnce`. */
  readonly refreshWorker: RefreshWorker;
  /** Connection events: `emit` stores one and queues its webhook deliveries. */
  readonly events: EventsService;
  readonly webhooks: WebhooksService;
  /** Sends queued webhook deliveries; the worker runner calls `start`, tests call `runOnce`. */
  readonly webhookDelivery: WebhookDelivery;
  readonly metrics: Metrics;
  /** Per-client rate limits, shared by the REST and gRPC surfaces. */
  readonly rateLimiter: RateLimiter;
  /** Flushes pending audit events, then releases connections. */
  close(): Promise<void>;
}

const LOOPBACK_HOSTS = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;

export interface ContainerOverrides {
  /** Tests pass a clock; production uses Date.now. */
  readonly now?: () => number;
  readonly keys?: ResolvedKeys;
  readonly db?: Database;
}

export function buildContainer(config: Config, overrides: ContainerOverrides = {}): Container {
  const now = overrides.now ?? Date.now;
  const keys = overrides.keys ?? resolveKeys(config);
  const db = overrides.db ?? openDatabase(config.database);
  const brokers = createBrokersStore(db);
  const auditRetention = createAuditRetention({ db, ...config.auditRetention, now });
  const audit = createAuditService({
    store: createAuditStore(db),
    batchMax: config.auditBatchMax,
    anchor: auditRetention.anchor,
    retentionEnabled: config.auditRetention.retentionMs > 0,
    now,
  });
  const adminKeys = createAdminKeysService({
    store: createAdminKeysStore(db),
    audit,
    envKeys: config.apiKeys,
    now,
  });
  const secrets = createSecretBackend(config.secretBackend, { db, ring: keys.ring, now });
  const secretsFallback =
    config.secretBackendFallback === undefined
      ? undefined
      : createSecretBackend(config.secretBackendFallback, { db, ring: keys.ring, now });
  const allowLoopbackHttp = config.mode !== 'production';
  // Plain http only for a loopback identity provider outside production (local development, tests).
  const allowInsecure = (url: URL) =>
    allowLoopbackHttp && url.protocol === 'http:' && LOOPBACK_HOSTS.test(url.hostname);
  // Identity-provider endpoints (discovery documents, token, revocation and key-set requests) go
  // through the egress guard; loopback is allowed outside production only, for a local provider.
  const egressRules = { allowLoopback: allowLoopbackHttp, allowCidrs: config.egressAllowedCidrs };
  const idpFetch = createGuardedFetch({
    allowCidrs: identityProviderCidrs(egressRules),
    timeoutMs: config.upstreamTimeoutMs,
    maxRedirects: 0,
    maxResponseBytes: 1024 * 1024,
  });
  const metrics = createMetrics();
  // The original's metric names, next to Nexus's own (issue #25).
  const originalMetrics = createOriginalMetrics(metrics.registry);
  const discovery = createDiscovery({
    ttlSeconds: config.discoveryTtlSeconds,
    allowInsecure,
    fetch: idpFetch,
    rules: egressRules,
    metrics: originalMetrics.discovery,
    now,
  });
  const providers = createProvidersService({
    store: createProvidersStore(db),
    secrets,
    secretsFallback,
    discovery,
    audit,
    allowLoopbackHttp,
    egressAllowedCidrs: config.egressAllowedCidrs,
    now,
  });
  const oauthClient = (
    profile: Parameters<typeof oauthClientFor>[0],
    secret: string | undefined,
    options?: Parameters<typeof oauthClientFor>[3],
  ) =>
    oauthClientFor(
      profile,
      secret,
      { discovery, allowInsecure, timeoutMs: config.upstreamTimeoutMs, fetch: idpFetch },
      options,
    );
  const eventsStore = createEventsStore(db);
  const events = createEventsService({ store: eventsStore, now });
  const schedule = createRefreshSchedule(config.refresh);
  const signingKeys = createSigningKeys({ store: createSigningKeysStore(db), ring: keys.ring, now });
  // Key sets (agents' jwks_uri, trusted issuers' JWKS) through the egress guard; loopback is allowed
  // outside production, like plain-http provider URLs, for a local identity provider.
  const jwksFetch = joseFetch(
    createSafeFetch({
      allowCidrs: identityProviderCidrs(egressRules),
      timeoutMs: 5_000,
      maxRedirects: 0,
      maxResponseBytes: 256 * 1024,
    }),
  );
  const agentsStore = createAgentsStore(db);
  const agents = createAgentsService({
    store: agentsStore,
    signingKeys,
    providers,
    audit,
    issuer: config.http.baseUrl,
    tokenEndpoint: `${config.http.baseUrl}/oauth/token`,
    tokenTtlSeconds: config.agentTokenTtlSeconds,
    jwksFetch,
    now,
  });
  const trustedIssuers = createTrustedIssuersService({
    store: createTrustedIssuersStore(db),
    discovery,
    audit,
    allowLoopbackHttp,
    jwksFetch,
    now,
  });
  const connectionsStore = createConnectionsStore(db, { refreshLeaseMs: config.refresh.leaseMs });
  const credentialStore = createCredentialStore({
    mode: config.tokenStore,
    ring: keys.ring,
    secrets,
    fallback: secretsFallback,
  });
  const connections = originalMetrics.instrument(
    createConnectionsService({
      store: connectionsStore,
      credentials: credentialStore,
      providers,
      oauthClient,
      audit,
      access: principalAccess,
      schedule,
      events,
      leaseMs: config.refresh.leaseMs,
      upstreamTimeoutMs: config.upstreamTimeoutMs,
      readWaitMs: config.refresh.readWaitMs,
      now,
    }),
  );
  const customScopes = createCustomScopes({ store: agentsStore, audit, now });
  const { sessions, onBehalfOf, tokenExchange } = createTokenExchangeParts({
    config,
    sessionsStore: createSessionsStore(db),
    agents,
    customScopes,
    trustedIssuers,
    signingKeys,
    connections,
    audit,
    now,
  });
  const { consent, capture, connect } = createConsentParts({
    config,
    keys,
    consentStore: createConsentStore(db),
    connectStore: createConnectStore(db),
    connections,
    providers,
    oauthClient,
    audit,
    originalMetrics,
    now,
  });
  const housekeeping = createHousekeeping({
    connections,
    consent,
    auditRetention,
    agents,
    signingKeys,
    eventLog: { pruneBefore: eventsStore.pruneBefore, retentionMs: config.eventRetentionMs },
    giveUpMs: config.refresh.giveUpMs,
    now,
  });
  const refreshWorker = createRefreshWorker({
    store: connections,
    connections,
    concurrency: config.refresh.concurrency,
    providerConcurrency: config.refresh.providerConcurrency,
    metrics: createRefreshMetrics(metrics.registry, connections, now),
    now,
  });
  const webhooks = createWebhooksService({
    store: createWebhooksStore(db),
    ring: keys.ring,
    audit,
    allowLoopbackHttp,
    now,
  });
  // Webhook targets pass the same private-address guard as credential probes; redirects are not followed.
  const webhookDelivery = createWebhookDelivery({
    store: createDeliveriesStore(db),
    ring: keys.ring,
    fetch: createSafeFetch({
      allowCidrs: config.egressAllowedCidrs,
      timeoutMs: config.upstreamTimeoutMs,
      maxRedirects: 0,
      maxResponseBytes: 4096,
    }),
    leaseMs: config.upstreamTimeoutMs + 60_000,
    metrics: createWebhookMetrics(metrics.registry),
    now,
  });
  const rateLimiter = createRateLimiter(
    {
      ...config.rateLimits,
      redisUrl: config.redisUrl ? new TextDecoder().decode(config.redisUrl.reveal()) : undefined,
    },
    now,
  );
  new Gauge({
    name: 'nexus_rate_limit_store_failures',
    help: 'Requests let through uncounted because the shared rate-limit store (Redis) failed, since start',
    registers: [metrics.registry],
    collect() {
      this.set(rateLimiter.storeFailures);
    },
  });
  const userSecretsStore = createUserSecretsStore(db);
  return {
    config,
    keys,
    db,
    brokers,
    keyRingCheck: createKeyRingCheck({ store: brokers, keys, now }),
    audit,
    adminKeys,
    secrets,
    secretsFallback,
    discovery,
    providers,
    catalog: createCatalogService(),
    connections,
    connectionsMaintenance: createMaintenance(connectionsStore, credentialStore),
    consent,
    capture,
    connect,
    housekeeping,
    signingKeys,
    agents,
    customScopes,
    trustedIssuers,
    sessions,
    userSecrets: createUserSecrets({
      store: userSecretsStore,
      backend: secrets,
      ring: keys.userSecretsRing,
      audit,
      now,
    }),
    userSecretsMaintenance: createUserSecretsMaintenance(userSecretsStore, secrets),
    onBehalfOf,
    tokenExchange,
    refreshWorker,
    events,
    webhooks,
    webhookDelivery,
    metrics,
    rateLimiter,
    async close() {
      await rateLimiter.close();
      await audit.flush();
      await secrets.close();
      await secretsFallback?.close();
      await db.close();
    },
  };
}
