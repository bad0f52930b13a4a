import type { Principal } from '../auth/principal.ts';
import { answerFilter } from '../http/serializer.ts';
import type { AgentsService } from '../modules/agents/agents.service.ts';
import type { AuditContext } from '../modules/audit/audit.service.ts';
import type { ConnectionsService } from '../modules/connections/connections.service.ts';
import { tokenResponse } from '../modules/connections/token-view.ts';
import type { ConsentService } from '../modules/consent/consent.service.ts';
import type { OnBehalfOf } from '../modules/token-exchange/obo.ts';
import { openedSession } from '../modules/token-exchange/session-views.ts';
import type { AgentSessions } from '../modules/token-exchange/sessions.ts';
import {
  connectionIdRequest,
  parseRequest,
  requestConnectionRequest,
  revokeConnectionRequest,
  sessionIdRequest,
  sessionSchemas,
} from './nexus.schemas.ts';
import { toStruct } from './struct.ts';

/** The token answer filter REST's serializer uses (compiled once, not zod's parse per call). */
const tokenAnswer = answerFilter(tokenResponse);

/** The authenticated caller of one call, and its audit context (`callerContext`, as REST's). */
export interface Caller {
  readonly principal: Principal;
  readonly ctx: AuditContext;
}

export type NexusHandler = (caller: Caller, request: unknown) => Promise<object>;

/**
 * `nexus.v1.NexusService`: each call validates its request, then makes the one service call the
 * matching REST route makes, with the same principal; access, grants and audit happen there.
 * Answers go through the response schemas REST uses (`token-view.ts`, `session-views.ts`), which
 * are also filters: a field that REST would not send (a refresh token, say) cannot leave through
 * gRPC either.
 */
export function nexusServiceHandlers(deps: {
  consent: Pick<ConsentService, 'start'>;
  connections: Pick<ConnectionsService, 'getToken' | 'refresh' | 'check' | 'revoke'>;
  sessions: Pick<AgentSessions, 'open' | 'get' | 'close'>;
  agents: Pick<AgentsService, 'actingAgent'>;
  onBehalfOf: OnBehalfOf;
  maxTtlSeconds: number;
}): Record<string, NexusHandler> {
  const { connections, sessions } = deps;
  const sessionRequests = sessionSchemas(deps.maxTtlSeconds);
  const ownerOf = (principal: Principal) => (principal.kind === 'agent' ? principal : null);

  return {
    async RequestConnection({ principal, ctx }, request) {
      const b = parseRequest(requestConnectionRequest, request);
      const started = await deps.consent.start(ctx, {
        workspaceId: b.user_id,
        // The original gateway's precedence: provider_id, then provider_name.
        providerRef: (b.provider_id ?? b.provider_name)!,
        scopes: b.scopes,
        returnUrl: b.return_url,
        action: b.action,
        principal,
        connectionConfig: b.connection_config,
      });
      return {
        auth_url: started.authUrl,
        state: started.state,
        scopes: started.scopes,
        provider_id: started.provider_id,
        connection_id: started.connection_id,
      };
    },

    async CheckConnection({ principal }, request) {
      const { connection_id } = parseRequest(connectionIdRequest, request);
      return connections.check(principal, connection_id);
    },

    // GetTokenResponse and RefreshConnectionResponse: `{token = 1}`, the REST body as a Struct.
    async GetToken({ principal, ctx }, request) {
      const { connection_id } = parseRequest(connectionIdRequest, request);
      return {
        token: toStruct(tokenAnswer(await connections.getToken(ctx, principal, connection_id))),
      };
    },

    async RefreshConnection({ principal, ctx }, request) {
      const { connection_id } = parseRequest(connectionIdRequest, request);
      return {
        token: toStruct(tokenAnswer(await connections.refresh(ctx, principal, connection_id))),
      };
    },

    async RevokeConnection({ principal, ctx }, request) {
      const b = parseRequest(revokeConnectionRequest, request);
      return connections.revoke(ctx, principal, b.connection_id, b.reason);
    },

    async RequestAgentSession({ principal, ctx }, request) {
      const b = parseRequest(sessionRequests.open, request);
      const agent = await deps.agents.actingAgent(principal, b.agent_id);
      const opened = await sessions.open(ctx, agent, {
        scopes: b.scopes,
        ttlSeconds: b.ttl_seconds,
        connectionId: b.connection_id,
      });
      return openedSession.parse(opened);
    },

    async RequestOboSession({ principal, ctx }, request) {
      const b = parseRequest(sessionRequests.obo, request);
      const agent = await deps.agents.actingAgent(principal, b.agent_id);
      const opened = await deps.onBehalfOf(ctx, agent, {
        userToken: b.user_token,
        scopes: b.scopes,
        ttlSeconds: b.ttl_seconds,
        connectionId: b.connection_id,
      });
      return openedSession.parse(opened);
    },

    async GetAgentSession({ principal }, request) {
      const { session_id } = parseRequest(sessionIdRequest, request);
      return openedSession.parse(await sessions.get(ownerOf(principal), session_id));
    },

    async CloseAgentSession({ principal, ctx }, request) {
      const { session_id } = parseRequest(sessionIdRequest, request);
      return openedSession.parse(await sessions.close(ctx, ownerOf(principal), session_id));
    },
  };
}
