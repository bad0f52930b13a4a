import type { Config } from './config/load.ts';
import { type ResolvedKeys, resolveKeys } from './crypto/key-file.ts';
import { type Database, openDatabase } from './db/client.ts';
import { createMetrics, type Metrics } from './http/metrics.ts';
import { type AdminKeysService, createAdminKeysService } from './modules/admin-keys/admin-keys.service.ts';
import { createAdminKeysStore } from './modules/admin-keys/admin-keys.store.ts';
import { type AuditService, createAuditService } from './modules/audit/audit.service.ts';
import { createAuditStore } from './modules/audit/audit.store.ts';
import { createDiscovery, type Discovery } from './modules/providers/discovery.ts';
import { createProvidersService, type ProvidersService } from './modules/providers/providers.service.ts';
import { createProvidersStore } from './modules/providers/providers.store.ts';
import { createInternalBackend } from './modules/secrets/internal.backend.ts';
import type { SecretBackend } from './modules/secrets/secret-backend.ts';

/** Every long-lived object of a broker process. Built here and nowhere else. */
export interface Container {
  readonly config: Config;
  readonly keys: ResolvedKeys;
  readonly db: Database;
  readonly audit: AuditService;
  readonly adminKeys: AdminKeysService;
  readonly secrets: SecretBackend;
  readonly discovery: Discovery;
  readonly providers: ProvidersService;
  readonly metrics: Metrics;
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
  const audit = createAuditService({ store: createAuditStore(db), batchMax: config.auditBatchMax, now });
  const adminKeys = createAdminKeysService({
    store: createAdminKeysStore(db),
    audit,
    envKeys: config.apiKeys,
    now,
  });
  const secrets = createInternalBackend(db, keys.ring, now);
  const allowLoopbackHttp = config.mode !== 'production';
  const discovery = createDiscovery({
    ttlSeconds: config.discoveryTtlSeconds,
    allowInsecure: (url) =>
      allowLoopbackHttp && url.protocol === 'http:' && LOOPBACK_HOSTS.test(url.hostname),
    now,
  });
  const providers = createProvidersService({
    store: createProvidersStore(db),
    secrets,
    discovery,
    audit,
    allowLoopbackHttp,
    now,
  });
  return {
    config,
    keys,
    db,
    audit,
    adminKeys,
    secrets,
    discovery,
    providers,
    metrics: createMetrics(),
    async close() {
      await audit.flush();
      await secrets.close();
      await db.close();
    },
  };
}
