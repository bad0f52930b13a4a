/**
 * The token-exchange module's objects (sessions, on-behalf-of, RFC 8693), built for container.ts
 * from the objects they depend on. Part of the composition root: only container.ts imports it.
 */
import type { Config } from './config/load.ts';
import { createSafeFetch } from './egress/safe-fetch.ts';
import type { AgentsService } from './modules/agents/agents.service.ts';
import type { CustomScopes } from './modules/agents/custom-scopes.ts';
import type { SigningKeys } from './modules/agents/signing-keys.ts';
import type { AuditService } from './modules/audit/audit.service.ts';
import type { ConnectionsService } from './modules/connections/connections.service.ts';
import { createOnBehalfOf, oboDecision } from './modules/token-exchange/obo.ts';
import { withRemoteVerification } from './modules/token-exchange/remote-user-tokens.ts';
import { createAgentSessions } from './modules/token-exchange/sessions.ts';
import { createTokenExchange } from './modules/token-exchange/token-exchange.ts';
import type { TrustedIssuersService } from './modules/token-exchange/trusted-issuers.service.ts';

export function createTokenExchangeParts(deps: {
  config: Config;
  /** Built by container.ts, which builds every store. */
  sessionsStore: Parameters<typeof createAgentSessions>[0]['store'];
  agents: AgentsService;
  customScopes: CustomScopes;
  trustedIssuers: TrustedIssuersService;
  signingKeys: SigningKeys;
  connections: ConnectionsService;
  audit: AuditService;
  now: () => number;
}) {
  const {
    config,
    sessionsStore,
    agents,
    customScopes,
    trustedIssuers,
    signingKeys,
    connections,
    audit,
    now,
  } = deps;
  const sessions = createAgentSessions({
    store: sessionsStore,
    agents,
    customScopes,
    signingKeys,
    connections,
    issuers: trustedIssuers,
    audit,
    issuer: config.http.baseUrl,
    maxTtlSeconds: config.agentSessionMaxTtlSeconds,
    narrow: (id, scopes) => connections.narrowedToken(id, scopes),
    now,
  });
  const onBehalfOf = createOnBehalfOf({
    sessions,
    // Opaque user tokens go to the developer's callback (BACKEND_AUTH_URL) when one is configured.
    users:
      config.backendAuth === undefined
        ? trustedIssuers
        : withRemoteVerification(trustedIssuers, {
            url: config.backendAuth.url,
            token:
              config.backendAuth.token === undefined
                ? undefined
                : new TextDecoder().decode(config.backendAuth.token.reveal()),
            fetch: createSafeFetch({
              allowCidrs: config.egressAllowedCidrs,
              timeoutMs: config.upstreamTimeoutMs,
              maxRedirects: 0,
            }),
            maxLifetimeMs: 900_000,
            now,
          }),
    // The agent gate: scopes its row still allows and its credential (token) was given.
    agentScopes: async (agent) =>
      (await agents.principalFor(agent.agentUuid)).scopes.filter((s) => agent.scopes.includes(s)),
    audit,
    decide: oboDecision,
    now,
  });
  const tokenExchange = createTokenExchange({
    agents,
    onBehalfOf,
    issuer: config.http.baseUrl,
    sessionTtlSeconds: Math.min(900, config.agentSessionMaxTtlSeconds),
  });
  return { sessions, onBehalfOf, tokenExchange };
}
