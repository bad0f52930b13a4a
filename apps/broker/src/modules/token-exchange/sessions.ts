import { randomUUID } from 'node:crypto';
import { decodeProtectedHeader, importJWK, jwtVerify, SignJWT } from 'jose';
import type { AgentPrincipal } from '../../auth/principal.ts';
import type { AgentSessionsTable } from '../../db/schema.ts';
import { commonError } from '../../errors/common.errors.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import { agentErrors } from '../agents/agents.errors.ts';
import type { AgentsService } from '../agents/agents.service.ts';
import type { CustomScopes } from '../agents/custom-scopes.ts';
import { agentMayUse, grantNames, scopesStillHeld } from '../agents/grants.ts';
import type { SigningKeys } from '../agents/signing-keys.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import { connectionErrors } from '../connections/connections.errors.ts';
import type { ConnectionsService } from '../connections/connections.service.ts';
import type { SessionsFilter, SessionsStore } from './sessions.store.ts';
import { tokenExchangeErrors } from './token-exchange.errors.ts';
import { usableUserId } from './user-tokens.ts';

/** JOSE `typ` of session tokens; agent access tokens are `at+jwt`, so neither passes for the other. */
export const SESSION_TOKEN_TYPE = 'nexus-session+jwt';

export interface OboContext {
  user_id: string;
  tenant_id: string | null;
  /** As the user's token carried it: a number stays a number in session tokens and introspection. */
  clearance_level: string | number | null;
  issuer: string;
  /**
   * The trusted issuer's row and version the user's token was verified under: the session lasts
   * while that issuer is trusted unchanged. Absent for a developer's callback (BACKEND_AUTH_URL).
   */
  issuer_id?: string;
  issuer_version?: number;
}

export interface SessionView {
  session_id: string;
  agent_id: string;
  connection_id: string | null;
  scopes_granted: string[];
  custom_scopes: string[];
  provider_scopes: string[];
  status: 'active' | 'closed' | 'expired';
  created_at: string;
  expires_at: string;
  obo: boolean;
  acting_for: string | null;
  tenant_id: string | null;
  /** Text in the session API (the SDKs and gRPC type it so); its original type in tokens. */
  clearance_level: string | null;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Agent sessions: a bounded grant of scopes (a subset of the agent's `allowed_scopes` and, for a
 * connection, of the scopes the user granted it), for a bounded time, closable at once. Custom
 * scopes come with a broker-signed session token that the developer's services verify offline
 * (JWKS) or online (`POST /oauth/introspect`, which also sees a closed session).
 */
/** Whether an introspected session (`introspect`'s answer) carries `scope`. */
export const sessionHasScope = (session: Record<string, unknown>, scope: string): boolean =>
  typeof session.scope === 'string' && session.scope.split(' ').includes(scope);

export function createAgentSessions(deps: {
  store: SessionsStore;
  /** The agents module: live, active agents and their `agent_id`s (its rows are its own). */
  agents: Pick<AgentsService, 'activeRow' | 'agentIdOf'>;
  customScopes: Pick<CustomScopes, 'namesAmong'>;
  signingKeys: SigningKeys;
  connections: Pick<ConnectionsService, 'describe'>;
  /** Whether the issuer an on-behalf-of session's user token came from is still trusted, unchanged. */
  issuers: { stillTrusted(obo: OboContext): Promise<boolean> };
  audit: Pick<AuditService, 'record'>;
  issuer: string;
  maxTtlSeconds: number;
  /** A down-scoped access token for a connection, or null when the provider cannot narrow. */
  narrow?: (
    connectionId: string,
    scopes: readonly string[],
  ) => Promise<{ access_token: string; token_type: string; expires_at: string | null; scope: string } | null>;
  now?: () => number;
}) {
  const { store } = deps;
  const now = deps.now ?? Date.now;

  async function agentRow(uuid: string) {
    const row = await deps.agents.activeRow(uuid);
    if (row === undefined) throw commonError('unauthorized');
    return row;
  }

  const customScopeNames = (scopes: readonly string[]) => deps.customScopes.namesAmong(scopes);

  function view(row: AgentSessionsTable, agentId: string, custom: Set<string>): SessionView {
    const scopes = JSON.parse(row.scopes) as string[];
    const obo = row.obo === null ? null : (JSON.parse(row.obo) as OboContext);
    const t = now();
    return {
      session_id: row.id,
      agent_id: agentId,
      connection_id: row.connection_id,
      scopes_granted: scopes,
      custom_scopes: scopes.filter((s) => custom.has(s)),
      provider_scopes: scopes.filter((s) => !custom.has(s)),
      status: row.closed_at !== null ? 'closed' : row.expires_at <= t ? 'expired' : 'active',
      created_at: iso(row.created_at),
      expires_at: iso(row.expires_at),
      obo: obo !== null,
      acting_for: obo?.user_id ?? null,
      tenant_id: obo?.tenant_id ?? null,
      clearance_level: obo === null || obo.clearance_level === null ? null : String(obo.clearance_level),
    };
  }

  /*
   * `sub` is who the token is about, by an id that is never reassigned: the user acting through
   * on-behalf-of, otherwise the agent's `id` (as in its access tokens; an `agent_id` is free again
   * once its agent is deleted). `client_id` always names the agent by its `agent_id`.
   */
  async function sign(row: AgentSessionsTable, agent: { id: string; agent_id: string }, scopes: string[]) {
    const signer = await deps.signingKeys.signer();
    const obo = row.obo === null ? null : (JSON.parse(row.obo) as OboContext);
    const claims: Record<string, unknown> = {
      client_id: agent.agent_id,
      sid: row.id,
      scope: scopes.join(' '),
    };
    if (obo !== null) {
      // RFC 8693 §4.1: the subject is the user; `act` identifies the agent acting for them.
      Object.assign(claims, {
        obo: true,
        // Who vouched for the user: same-named users of two issuers are not the same person.
        obo_iss: obo.issuer,
        acting_for: obo.user_id,
        tenant_id: obo.tenant_id,
        clearance_level: obo.clearance_level,
        act: { sub: agent.id, client_id: agent.agent_id },
      });
    }
    return new SignJWT(claims)
      .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: SESSION_TOKEN_TYPE })
      .setIssuer(deps.issuer)
      .setAudience(deps.issuer)
      .setSubject(obo?.user_id ?? agent.id)
      .setIssuedAt(Math.floor(row.created_at / 1000))
      .setExpirationTime(Math.floor(row.expires_at / 1000))
      .setJti(row.id)
      .sign(signer.privateKey);
  }

  return {
    /**
     * Opens a session for `agent`. Every requested scope must be in the agent's `allowed_scopes`
     * (and, for OBO, already checked against the user's permissions by the caller); provider scopes
     * need a connection in the agent's grant that holds them. Refusals name the failing gate.
     */
    async open(
      ctx: AuditContext,
      agent: AgentPrincipal,
      request: { scopes: string[]; ttlSeconds: number; connectionId?: string | undefined; obo?: OboContext },
    ) {
      const row = await agentRow(agent.agentUuid);
      // What the agent may still have (its row) and what this credential was given (its token).
      const allowed = (JSON.parse(row.allowed_scopes) as string[]).filter((s) => agent.scopes.includes(s));
      const requested = [...new Set(request.scopes)];
      const deny = async (
        gate: string,
        refused: string[],
        code: 'invalid_scope' | 'connection' = 'invalid_scope',
      ) => {
        await deps.audit.record(ctx, {
          action: request.obo ? 'agent.obo_denied' : 'agent.session_denied',
          resourceType: 'agent',
          resourceId: row.id,
          outcome: 'failure',
          details: {
            gate,
            refused,
            ...(request.obo ? { acting_for: request.obo.user_id } : {}),
            ...(code === 'connection' ? { connection_id: request.connectionId } : {}),
          },
        });
        // Missing, outside the grant, not active or not the user's: the caller cannot tell which.
        if (code === 'connection') throw errorFrom(connectionErrors, 'connection_not_found');
        // The user gate refuses the whole request: every scope, and the user it was asked for.
        const who = gate === 'acting_for' && request.obo ? { acting_for: request.obo.user_id } : {};
        throw errorFrom(agentErrors, 'invalid_scope', { details: { gate, refused, ...who } });
      };
      const notAllowed = requested.filter((s) => !allowed.includes(s));
      if (notAllowed.length > 0) await deny('agent_scopes', notAllowed);
      // Acting for a user needs that user in the agent's grant, with or without a connection;
      // and a user a grant can name (`*` names them all: user-tokens.ts `usableUserId`).
      if (
        request.obo &&
        (!usableUserId(request.obo.user_id) || !grantNames(agent.allowedWorkspaces, request.obo.user_id))
      )
        await deny('acting_for', requested);
      const custom = await customScopeNames(requested);
      const providerScopes = requested.filter((s) => !custom.has(s));
      let connectionId: string | null = null;
      if (request.connectionId !== undefined) {
        const connection = await deps.connections.describe(request.connectionId);
        if (connection === undefined || !agentMayUse(agent, connection) || connection.status !== 'active')
          await deny('connection', [], 'connection');
        // Another user's connection is not there for this user (before its scopes say anything).
        if (request.obo && connection!.workspace_id !== request.obo.user_id)
          await deny('connection', [], 'connection');
        const held = JSON.parse(connection!.scopes) as string[];
        const missing = providerScopes.filter((s) => !held.includes(s));
        if (missing.length > 0) await deny('connection_scopes', missing);
        connectionId = connection!.id;
      } else if (providerScopes.length > 0) {
        // Without a connection, only custom scopes mean something.
        await deny('custom_scopes', providerScopes);
      }
      const t = now();
      const ttl = Math.min(request.ttlSeconds, deps.maxTtlSeconds);
      const session: AgentSessionsTable = {
        id: randomUUID(),
        agent_uuid: row.id,
        connection_id: connectionId,
        scopes: JSON.stringify(requested),
        obo: request.obo ? JSON.stringify(request.obo) : null,
        created_at: t,
        expires_at: t + ttl * 1000,
        closed_at: null,
      };
      await store.insert(session);
      await deps.audit.record(ctx, {
        action: request.obo ? 'agent.obo_opened' : 'agent.session_opened',
        resourceType: 'agent_session',
        resourceId: session.id,
        details: {
          agent_id: row.agent_id,
          scopes: requested,
          ttl_seconds: ttl,
          ...(connectionId ? { connection_id: connectionId } : {}),
          ...(request.obo ? { acting_for: request.obo.user_id, tenant_id: request.obo.tenant_id } : {}),
        },
      });
      const out = view(session, row.agent_id, custom);
      // Provider scopes: a token narrowed by the provider where it can; otherwise say so.
      const narrowed =
        out.provider_scopes.length > 0 && connectionId !== null && deps.narrow
          ? await deps.narrow(connectionId, out.provider_scopes)
          : null;
      return {
        ...out,
        ...(out.custom_scopes.length > 0 || request.obo
          ? { session_token: await sign(session, row, requested), token_type: 'session' as const }
          : {}),
        ...(out.provider_scopes.length > 0 ? { downscoped: narrowed !== null } : {}),
        ...(narrowed
          ? {
              access_token: narrowed.access_token,
              access_token_type: narrowed.token_type,
              access_token_expires_at: narrowed.expires_at,
              access_token_scope: narrowed.scope,
            }
          : {}),
      };
    },

    async get(agent: AgentPrincipal | null, id: string): Promise<SessionView> {
      const row = await store.find(id);
      if (row === undefined || (agent !== null && row.agent_uuid !== agent.agentUuid))
        throw errorFrom(tokenExchangeErrors, 'session_not_found');
      const owner = await deps.agents.agentIdOf(row.agent_uuid);
      return view(row, owner ?? '', await customScopeNames(JSON.parse(row.scopes)));
    },

    async close(ctx: AuditContext, agent: AgentPrincipal | null, id: string): Promise<SessionView> {
      const current = await this.get(agent, id);
      if (current.status === 'active') {
        await store.close(id, now());
        await deps.audit.record(ctx, {
          action: 'agent.session_closed',
          resourceType: 'agent_session',
          resourceId: id,
          details: { agent_id: current.agent_id },
        });
      }
      return this.get(agent, id);
    },

    /**
     * `GET /admin/v1/agent-sessions`: a page of every agent's sessions, newest first, never a
     * token (sessions store none). `cursor` is the previous page's `next_cursor`.
     */
    async list(filter: SessionsFilter, cursor: string | undefined, limit: number) {
      let after: { createdAt: number; id: string } | undefined;
      if (cursor !== undefined) {
        const match = /^(\d{1,15}):([0-9a-f-]{36})$/.exec(Buffer.from(cursor, 'base64url').toString());
        if (!match)
          throw commonError('invalid_request', { message: 'cursor: not a next_cursor of this list.' });
        after = { createdAt: Number(match[1]), id: match[2]! };
      }
      const rows = await store.listPage(filter, after, limit + 1, now());
      const page = rows.slice(0, limit);
      const owners = new Map<string, string>();
      for (const uuid of new Set(page.map((r) => r.agent_uuid)))
        owners.set(uuid, (await deps.agents.agentIdOf(uuid)) ?? '');
      const custom = await customScopeNames([
        ...new Set(page.flatMap((r) => JSON.parse(r.scopes) as string[])),
      ]);
      const last = page[page.length - 1];
      return {
        sessions: page.map((r) => view(r, owners.get(r.agent_uuid) ?? '', custom)),
        next_cursor:
          rows.length > limit && last !== undefined
            ? Buffer.from(`${last.created_at}:${last.id}`).toString('base64url')
            : null,
      };
    },

    /**
     * RFC 7662 introspection of a session token: active only while the signature, expiry and the
     * session row agree (closed sessions and deactivated agents answer `active: false` at once).
     */
    async introspect(token: string): Promise<{ active: boolean } & Record<string, unknown>> {
      const inactive = { active: false };
      let kid: string | undefined;
      try {
        const header = decodeProtectedHeader(token);
        if (header.typ !== SESSION_TOKEN_TYPE || header.alg !== 'ES256') return inactive;
        kid = header.kid;
      } catch {
        return inactive;
      }
      const jwk = kid === undefined ? undefined : await deps.signingKeys.publicKey(kid);
      if (jwk === undefined) return inactive;
      try {
        const { payload } = await jwtVerify(token, await importJWK(jwk, 'ES256'), {
          issuer: deps.issuer,
          audience: deps.issuer,
          typ: SESSION_TOKEN_TYPE,
          algorithms: ['ES256'],
          currentDate: new Date(now()),
        });
        // Primary-key reads: the session (closed or expired: inactive), its agent through the
        // agents service (deactivated or deleted: inactive), and its connection if it has one.
        const row = await store.find(String(payload.sid));
        if (row === undefined || row.closed_at !== null || row.expires_at <= now()) return inactive;
        const agent = await deps.agents.activeRow(row.agent_uuid);
        if (agent === undefined) return inactive;
        // Opened before the agent was last deactivated (or in that very millisecond): reactivation
        // does not bring it back.
        if (agent.tokens_not_before !== null && row.created_at <= agent.tokens_not_before) return inactive;
        // The agent's grant as it is now: an operator who narrows it narrows the open sessions too.
        // A user no longer in the grant ends the session; scopes no longer granted leave it.
        const obo = row.obo === null ? null : (JSON.parse(row.obo) as OboContext);
        // Deleting or changing the trusted issuer ends the sessions its users' tokens opened.
        if (obo !== null && !(await deps.issuers.stillTrusted(obo))) return inactive;
        const actingFor = obo?.user_id ?? null;
        const grant = {
          allowedProviders: JSON.parse(agent.allowed_providers) as string[],
          allowedWorkspaces: JSON.parse(agent.allowed_workspaces) as string[],
        };
        if (actingFor !== null && !grantNames(grant.allowedWorkspaces, actingFor)) return inactive;
        // A session bound to a connection lasts while the grant covers that connection and it is active.
        if (row.connection_id !== null) {
          const connection = await deps.connections.describe(row.connection_id);
          if (connection === undefined || connection.status !== 'active' || !agentMayUse(grant, connection))
            return inactive;
        }
        const scope = scopesStillHeld(payload.scope, agent);
        if (scope.length === 0) return inactive;
        return { active: true, token_type: 'session', ...payload, scope: scope.join(' ') };
      } catch {
        return inactive;
      }
    },
  };
}

export type AgentSessions = ReturnType<typeof createAgentSessions>;
