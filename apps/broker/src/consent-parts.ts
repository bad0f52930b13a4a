/**
 * The ways a connection is started (consent for OAuth, hosted capture for static credentials, hosted
 * connect sessions around either), built for container.ts from the stores and services they use.
 * Part of the composition root: only container.ts imports it.
 */
import type { Config } from './config/load.ts';
import type { ResolvedKeys } from './crypto/key-file.ts';
import { createSafeFetch } from './egress/safe-fetch.ts';
import type { OriginalMetrics } from './http/original-metrics.ts';
import type { AuditService } from './modules/audit/audit.service.ts';
import { createConnectService } from './modules/connect/connect.service.ts';
import type { ConnectionsService } from './modules/connections/connections.service.ts';
import { createCaptureService } from './modules/consent/capture.service.ts';
import { createConsentService } from './modules/consent/consent.service.ts';
import type { ProvidersService } from './modules/providers/providers.service.ts';

type ConsentDeps = Parameters<typeof createConsentService>[0];

export function createConsentParts(deps: {
  config: Config;
  keys: Pick<ResolvedKeys, 'ring' | 'stateKey'>;
  /** Built by container.ts, which builds every store. */
  consentStore: ConsentDeps['store'];
  connectStore: Parameters<typeof createConnectService>[0]['store'];
  connections: ConnectionsService;
  providers: ProvidersService;
  oauthClient: ConsentDeps['oauthClient'];
  audit: AuditService;
  originalMetrics: Pick<OriginalMetrics, 'consent' | 'capture'>;
  now: () => number;
}) {
  const { config, keys, connections, providers, audit, now } = deps;
  // An app's return URLs; the consent flows also accept the broker's own connect finish page.
  const appReturnUrls = {
    allowedDomains: config.allowedReturnDomains,
    allowLoopback: config.mode !== 'production',
    requireHttps: config.mode === 'production',
  };
  // As return-url.ts compares it (`origin` + path): lower-case host, no default port, whatever
  // the spelling of BASE_URL.
  const finish = new URL(`${config.http.baseUrl}/connect/finish`);
  const returnUrls = { ...appReturnUrls, own: `${finish.origin}${finish.pathname}` };
  const consent = createConsentService({
    store: deps.consentStore,
    connections,
    providers,
    oauthClient: deps.oauthClient,
    audit,
    ring: keys.ring,
    stateKey: keys.stateKey,
    redirectUri: `${config.http.baseUrl}${config.http.redirectPath}`,
    capturePageUrl: `${config.http.baseUrl}/connect/capture`,
    returnUrls,
    metrics: deps.originalMetrics.consent,
    verifier: config.connect.verifier,
    now,
  });
  const capture = createCaptureService({
    store: deps.consentStore,
    connections,
    providers,
    stateKey: keys.stateKey,
    returnUrls,
    probe: createSafeFetch({ allowCidrs: config.egressAllowedCidrs, timeoutMs: config.upstreamTimeoutMs }),
    metrics: deps.originalMetrics.capture,
    confirmation: consent,
    now,
  });
  const connect = createConnectService({
    store: deps.connectStore,
    consent,
    providers,
    connections,
    audit,
    returnUrls: appReturnUrls,
    baseUrl: config.http.baseUrl,
    ttlMs: config.connect.sessionTtlMs,
    now,
  });
  return { consent, capture, connect };
}
