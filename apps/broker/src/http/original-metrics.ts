import { Counter, Histogram, type Registry } from 'prom-client';
import type { ConnectionsService } from '../modules/connections/connections.service.ts';
import type { ConsentMetrics } from '../modules/consent/consent.service.ts';
import type { DiscoveryMetrics } from '../modules/providers/discovery.ts';

/** prometheus/client_golang's DefBuckets, which every histogram of the original used. */
const GO_DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Outcome = 'success' | 'error';

/**
 * The original Go broker's metric names, next to Nexus's own `nexus_*` ones, so that dashboards
 * and alerts written for it keep working after the move (issue #25). Names, label names and label
 * values are the original's (read from its source: handlers/consent.go, handlers/callback.go,
 * discovery/discovery.go, oidcutil); what each counts is the nearest Nexus event, listed in the
 * migration guide. Label values are bounded: an outcome, or a provider name (operator-defined);
 * never a user, connection, key or credential.
 */
export function createOriginalMetrics(registry: Registry) {
  const registers = [registry];
  const consents = new Counter({
    name: 'oauth_consents_created_total',
    help: 'Total OAuth consents created (connection requests answered, OAuth and capture links)',
    registers,
  });
  const consentsOpenid = new Counter({
    name: 'oauth_consents_with_openid_total',
    help: 'Total OAuth consents where openid scope was requested',
    registers,
  });
  const exchanges = new Counter({
    name: 'oauth_token_exchanges_total',
    help: 'Total OAuth token exchanges (authorization codes exchanged at the callback) by status',
    labelNames: ['status'] as const,
    registers,
  });
  const exchangeDuration = new Histogram({
    name: 'oauth_exchange_duration_seconds',
    help: 'Duration of token exchange requests (callback: code exchange to stored connection)',
    buckets: GO_DEFAULT_BUCKETS,
    registers,
  });
  const idTokens = new Counter({
    name: 'oauth_id_tokens_returned_total',
    help: 'id_tokens returned by providers at the code exchange and verified (discarded ones are not counted)',
    registers,
  });
  const tokenGets = new Counter({
    name: 'oauth_token_get_total',
    help: 'Token retrievals by provider and whether id_token present (Nexus never returns one: always "false")',
    labelNames: ['provider', 'has_id_token'] as const,
    registers,
  });
  const refreshes = new Counter({
    name: 'oauth_token_refreshes_total',
    help: 'Total on-demand OAuth token refreshes (POST /v1/refresh/{id} and its admin form) by status',
    labelNames: ['status'] as const,
    registers,
  });
  const refreshDuration = new Histogram({
    name: 'oauth_refresh_duration_seconds',
    help: 'Duration of on-demand token refresh requests',
    buckets: GO_DEFAULT_BUCKETS,
    registers,
  });
  const captures = new Counter({
    name: 'oauth_credential_captures_total',
    help: 'Total credential captures (API key / static token) by status',
    labelNames: ['status'] as const,
    registers,
  });
  const discoveries = new Counter({
    name: 'oidc_discovery_total',
    help: 'OIDC discovery attempts by result (documents fetched; cached answers are not attempts)',
    labelNames: ['result'] as const,
    registers,
  });
  const discoveryDuration = new Histogram({
    name: 'oidc_discovery_duration_seconds',
    help: 'Duration of OIDC discovery',
    buckets: GO_DEFAULT_BUCKETS,
    registers,
  });
  const verifications = new Counter({
    name: 'oidc_verifications_total',
    help: 'ID token verifications by result',
    labelNames: ['result'] as const,
    registers,
  });
  const verificationDuration = new Histogram({
    name: 'oidc_verification_duration_seconds',
    help: 'Duration of ID token verification',
    buckets: GO_DEFAULT_BUCKETS,
    registers,
  });
  // The original registered its status series up front (ConstLabels): both exist from the start.
  for (const status of ['success', 'error'] as const) {
    exchanges.inc({ status }, 0);
    refreshes.inc({ status }, 0);
    captures.inc({ status }, 0);
    discoveries.inc({ result: status }, 0);
    verifications.inc({ result: status }, 0);
  }

  const consent: ConsentMetrics = {
    consentStarted(openid) {
      consents.inc();
      if (openid) consentsOpenid.inc();
    },
    codeExchanged(outcome, seconds) {
      exchanges.inc({ status: outcome });
      exchangeDuration.observe(seconds);
    },
    idTokenChecked(outcome, seconds) {
      verifications.inc({ result: outcome });
      verificationDuration.observe(seconds);
      if (outcome === 'success') idTokens.inc();
    },
  };
  const discovery: DiscoveryMetrics = {
    discovered(outcome, seconds) {
      discoveries.inc({ result: outcome });
      discoveryDuration.observe(seconds);
    },
  };

  return {
    consent,
    discovery,
    capture: {
      captured(outcome: Outcome) {
        captures.inc({ status: outcome });
      },
    },

    /**
     * The connections service, counting what the original's token handlers counted: credentials
     * handed to a caller by `GET /v1/token/{id}`, `GET /v1/resolve` and their admin forms (and gRPC
     * GetToken), by provider name; and on-demand refreshes by outcome and duration. The credential
     * proxy's reads (`readAction` null: the credential never leaves the broker) are not retrievals.
     */
    instrument<S extends Pick<ConnectionsService, 'getToken' | 'resolve' | 'refresh'>>(service: S): S {
      const counted = <T extends { provider_name: string }>(answer: T, readAction: string | null) => {
        if (readAction !== null) tokenGets.inc({ provider: answer.provider_name, has_id_token: 'false' });
        return answer;
      };
      return {
        ...service,
        getToken: async (ctx, principal, id, readAction = 'connection.token_read') =>
          counted(await service.getToken(ctx, principal, id, readAction), readAction),
        resolve: async (ctx, principal, workspaceId, providerId, readAction = 'connection.token_read') =>
          counted(await service.resolve(ctx, principal, workspaceId, providerId, readAction), readAction),
        refresh: async (ctx, principal, id, readAction = 'connection.token_read') => {
          const started = performance.now();
          try {
            const answer = await service.refresh(ctx, principal, id, readAction);
            refreshes.inc({ status: 'success' });
            return answer;
          } catch (error) {
            refreshes.inc({ status: 'error' });
            throw error;
          } finally {
            refreshDuration.observe((performance.now() - started) / 1000);
          }
        },
      } satisfies Pick<ConnectionsService, 'getToken' | 'resolve' | 'refresh'>;
    },
  };
}

export type OriginalMetrics = ReturnType<typeof createOriginalMetrics>;
