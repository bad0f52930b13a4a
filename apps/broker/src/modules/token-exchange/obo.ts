import type { AgentPrincipal } from '../../auth/principal.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import { agentErrors } from '../agents/agents.errors.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import type { AgentSessions } from './sessions.ts';
import { tokenExchangeErrors } from './token-exchange.errors.ts';

/** The outcome of the two on-behalf-of gates; `refused` lists the scopes that failed the named gate. */
export type OboDecision =
  | { allowed: true }
  | { allowed: false; gate: 'user_permissions' | 'agent_scopes'; refused: string[] };

/**
 * On-behalf-of needs both gates (issue #6): every requested scope must be among the user's
 * permissions (from their verified token) AND among the agent's `allowed_scopes`. Comparison is
 * exact; there are no wildcards. The user's gate is checked first, so when both fail the answer
 * names `user_permissions`. An empty request passes both gates.
 */
export function oboDecision(input: {
  agentAllowedScopes: string[];
  userPermissions: string[];
  requested: string[];
}): OboDecision {
  const requested = [...new Set(input.requested)];
  const user = new Set(input.userPermissions);
  const refusedByUser = requested.filter((scope) => !user.has(scope));
  if (refusedByUser.length > 0) return { allowed: false, gate: 'user_permissions', refused: refusedByUser };
  const agent = new Set(input.agentAllowedScopes);
  const refusedByAgent = requested.filter((scope) => !agent.has(scope));
  if (refusedByAgent.length > 0) return { allowed: false, gate: 'agent_scopes', refused: refusedByAgent };
  return { allowed: true };
}

/** What on-behalf-of needs from the trusted-issuer registry. */
export interface UserTokenChecker {
  verifyUserToken(token: string): Promise<
    | {
        ok: true;
        /** The trusted issuer's row and version; absent for a developer's callback (BACKEND_AUTH_URL). */
        issuerId?: string;
        issuerVersion?: number;
        issuer: string;
        userId: string;
        tenantId: string | null;
        permissions: string[];
        /** A number when the user's token carried one (it stays one in the session token). */
        clearance: string | number | null;
        expiresAt: number;
      }
    | { ok: false; reason: string }
  >;
}

/**
 * On-behalf-of: an agent acts for the user whose token (from a trusted issuer) it presents. Two
 * gates, both required: every scope is in the user's permissions and in the agent's
 * `allowed_scopes`. The session is bound to that user's connections, carries `obo`, `acting_for`,
 * `tenant_id`, `clearance_level`, and its token an RFC 8693 `act` claim naming the agent. It never
 * outlives the user's token. Every decision is audited with the failing gate.
 */
export function createOnBehalfOf(deps: {
  sessions: AgentSessions;
  users: UserTokenChecker;
  agentScopes: (agent: AgentPrincipal) => Promise<string[]>;
  audit: Pick<AuditService, 'record'>;
  decide: (input: {
    agentAllowedScopes: string[];
    userPermissions: string[];
    requested: string[];
  }) => { allowed: true } | { allowed: false; gate: string; refused: string[] };
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;
  return async (
    ctx: AuditContext,
    agent: AgentPrincipal,
    request: { userToken: string; scopes: string[]; ttlSeconds: number; connectionId?: string | undefined },
  ) => {
    const deny = async (gate: string, details: Record<string, unknown>) => {
      await deps.audit.record(ctx, {
        action: 'agent.obo_denied',
        resourceType: 'agent',
        resourceId: agent.agentUuid,
        outcome: 'failure',
        details: { gate, ...details },
      });
    };
    const user = await deps.users.verifyUserToken(request.userToken);
    if (!user.ok) {
      await deny('user_token', { reason: user.reason });
      throw errorFrom(tokenExchangeErrors, 'invalid_grant', {
        details: { gate: 'user_token', reason: user.reason },
      });
    }
    const decision = deps.decide({
      agentAllowedScopes: await deps.agentScopes(agent),
      userPermissions: user.permissions,
      requested: request.scopes,
    });
    if (!decision.allowed) {
      await deny(decision.gate, { refused: decision.refused, acting_for: user.userId });
      throw errorFrom(agentErrors, 'invalid_scope', {
        details: { gate: decision.gate, refused: decision.refused },
      });
    }
    const remaining = Math.floor((user.expiresAt - now()) / 1000);
    return deps.sessions.open(ctx, agent, {
      scopes: request.scopes,
      ttlSeconds: Math.max(1, Math.min(request.ttlSeconds, remaining)),
      connectionId: request.connectionId,
      obo: {
        user_id: user.userId,
        tenant_id: user.tenantId,
        clearance_level: user.clearance,
        issuer: user.issuer,
        ...(user.issuerId === undefined || user.issuerVersion === undefined
          ? {}
          : { issuer_id: user.issuerId, issuer_version: user.issuerVersion }),
      },
    });
  };
}

export type OnBehalfOf = ReturnType<typeof createOnBehalfOf>;
