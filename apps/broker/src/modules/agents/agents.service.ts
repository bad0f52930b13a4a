/** Keys inline and from a URL at once: the inline ones would win, and the URL be ignored. */
const bothKeySources = () =>
  commonError('invalid_request', {
    message: 'Give jwks or jwks_uri, not both (set the other to null to switch).',
  });

/**
 * The agent registry and the one entry point other code uses for agents. Identities (create,
 * update, delete) live here; the rest is wired in from its own file:
 *
 * - agent-views.ts: finding a live agent and the admin view;
 * - agent-secrets.ts: client secrets (issued, rotated with an overlap, revoked);
 * - client-credentials.ts: the `client_credentials` grant and client authentication as a principal;
 * - access-tokens.ts: verifying the access tokens the grant issues;
 * - agents.store.ts: every query on the module's tables (the service holds no SQL).
 */
import { randomUUID } from 'node:crypto';
import type { FetchImplementation } from 'jose';
import type { AgentPrincipal, Principal } from '../../auth/principal.ts';
import type { AgentsTable } from '../../db/schema.ts';
import { commonError } from '../../errors/common.errors.ts';
import { checkIfMatch } from '../../errors/if-match.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import type { ProvidersService } from '../providers/providers.service.ts';
import { createAccessTokenVerifier, principalOf } from './access-tokens.ts';
import { createAgentSecrets } from './agent-secrets.ts';
import { type AgentView, createAgentViews, list } from './agent-views.ts';
import { agentErrors } from './agents.errors.ts';
import type { AgentsStore } from './agents.store.ts';
import { createClientCredentialsGrant } from './client-credentials.ts';
import type { AgentJwks } from './jwks.ts';
import type { SigningKeys } from './signing-keys.ts';

export type { AgentView } from './agent-views.ts';
export type { ClientAuthentication } from './client-auth.ts';

export interface AgentInput {
  agent_id: string;
  description?: string | undefined;
  allowed_scopes: string[];
  allowed_providers: string[];
  allowed_workspaces: string[];
  allowed_secrets?: string[] | undefined;
  jwks?: AgentJwks | null | undefined;
  jwks_uri?: string | null | undefined;
  active?: boolean | undefined;
}

export function createAgentsService(deps: {
  store: AgentsStore;
  signingKeys: SigningKeys;
  providers: Pick<ProvidersService, 'resolve'>;
  audit: Pick<AuditService, 'record'>;
  /** The broker's issuer identifier (BASE_URL) and its token endpoint. */
  issuer: string;
  tokenEndpoint: string;
  tokenTtlSeconds: number;
  /** Fetch for agents' `jwks_uri` (the egress guard); jose's own fetch when absent. */
  jwksFetch?: FetchImplementation;
  now?: () => number;
}) {
  const { store } = deps;
  const now = deps.now ?? Date.now;
  const accessTokens = createAccessTokenVerifier(deps);
  const views = createAgentViews({ store, now });
  const { liveRow, view } = views;
  const secrets = createAgentSecrets({ store, views, audit: deps.audit, now });
  const grant = createClientCredentialsGrant({ ...deps, now });

  /** An operator acting for an agent (admin key + `agent_id`): the agent's own permissions. */
  async function principalFor(ref: string): Promise<AgentPrincipal> {
    const row = await liveRow(ref);
    if (row.disabled_at !== null) throw commonError('forbidden', { message: 'The agent is deactivated.' });
    return principalOf(row, list(row.allowed_scopes));
  }

  /** Provider names, aliases or ids → ids (so a rename keeps the grant); "*" stays. */
  async function providerIds(refs: readonly string[]): Promise<string[]> {
    const out: string[] = [];
    for (const ref of refs) {
      if (ref === '*') out.push('*');
      else {
        try {
          out.push((await deps.providers.resolve(ref)).id);
        } catch {
          throw errorFrom(agentErrors, 'invalid_agent', {
            details: [{ path: 'allowed_providers', message: `no provider ${ref.slice(0, 64)}` }],
          });
        }
      }
    }
    return [...new Set(out)];
  }

  return {
    async create(ctx: AuditContext, input: AgentInput & { generate_secret: boolean }) {
      if (input.jwks && input.jwks_uri) throw bothKeySources();
      const t = now();
      const id = randomUUID();
      const row: AgentsTable = {
        id,
        agent_id: input.agent_id,
        description: input.description ?? '',
        allowed_scopes: JSON.stringify([...new Set(input.allowed_scopes)]),
        allowed_providers: JSON.stringify(await providerIds(input.allowed_providers)),
        allowed_workspaces: JSON.stringify([...new Set(input.allowed_workspaces)]),
        allowed_secrets: JSON.stringify([...new Set(input.allowed_secrets ?? [])]),
        jwks: input.jwks ? JSON.stringify(input.jwks) : null,
        jwks_uri: input.jwks_uri ?? null,
        disabled_at: input.active === false ? t : null,
        tokens_not_before: null,
        version: 1,
        created_at: t,
        updated_at: t,
        deleted_at: null,
      };
      try {
        await store.insert(row);
      } catch (cause) {
        if (await store.findLiveByAgentId(input.agent_id))
          throw errorFrom(agentErrors, 'agent_id_taken', { cause, details: { agent_id: input.agent_id } });
        throw cause;
      }
      const secret = input.generate_secret ? await secrets.newSecret(id, t) : undefined;
      await deps.audit.record(ctx, {
        action: 'agent.created',
        resourceType: 'agent',
        resourceId: id,
        details: { agent_id: row.agent_id, allowed_scopes: list(row.allowed_scopes) },
      });
      return { ...(await view(row)), ...(secret ? { client_secret: secret.secret } : {}) };
    },

    async list(): Promise<AgentView[]> {
      return Promise.all((await views.listRows()).map(view));
    },

    async get(ref: string): Promise<AgentView> {
      return view(await liveRow(ref));
    },

    async update(
      ctx: AuditContext,
      ref: string,
      patch: Partial<AgentInput>,
      ifMatch?: string,
    ): Promise<AgentView> {
      const row = await liveRow(ref);
      checkIfMatch(ifMatch, row.version);
      const t = now();
      const set: Partial<AgentsTable> = { updated_at: t, version: row.version + 1 };
      if (patch.description !== undefined) set.description = patch.description;
      if (patch.allowed_scopes !== undefined)
        set.allowed_scopes = JSON.stringify([...new Set(patch.allowed_scopes)]);
      if (patch.allowed_providers !== undefined)
        set.allowed_providers = JSON.stringify(await providerIds(patch.allowed_providers));
      if (patch.allowed_workspaces !== undefined)
        set.allowed_workspaces = JSON.stringify([...new Set(patch.allowed_workspaces)]);
      if (patch.allowed_secrets !== undefined)
        set.allowed_secrets = JSON.stringify([...new Set(patch.allowed_secrets)]);
      if (patch.jwks !== undefined) set.jwks = patch.jwks === null ? null : JSON.stringify(patch.jwks);
      if (patch.jwks_uri !== undefined) set.jwks_uri = patch.jwks_uri;
      if (patch.active !== undefined) set.disabled_at = patch.active ? null : (row.disabled_at ?? t);
      // What the agent held when it was deactivated stays dead when it is reactivated.
      if (patch.active === false && row.disabled_at === null) set.tokens_not_before = t;
      const next = { ...row, ...set };
      if (next.jwks !== null && next.jwks_uri !== null) throw bothKeySources();
      if (!(await store.update(row.id, row.version, set))) throw commonError('version_conflict');
      const changed = Object.keys(patch).sort();
      await deps.audit.record(ctx, {
        action:
          patch.active === false
            ? 'agent.deactivated'
            : patch.active === true
              ? 'agent.reactivated'
              : 'agent.updated',
        resourceType: 'agent',
        resourceId: row.id,
        details: { agent_id: row.agent_id, changed },
      });
      return view(next as AgentsTable);
    },

    async remove(ctx: AuditContext, ref: string, ifMatch?: string): Promise<void> {
      const row = await liveRow(ref);
      checkIfMatch(ifMatch, row.version);
      await store.softDelete(row.id, row.version, now());
      await deps.audit.record(ctx, {
        action: 'agent.deleted',
        resourceType: 'agent',
        resourceId: row.id,
        details: { agent_id: row.agent_id },
      });
    },

    /** A new client secret; the live ones keep working for `overlapSeconds`, then stop. */
    rotateSecret: secrets.rotateSecret,

    revokeSecret: secrets.revokeSecret,

    /** See client-credentials.ts. */
    clientCredentials: grant.clientCredentials,

    /**
     * The agent authenticating at the token endpoint (secret or assertion), as a principal with its
     * current grant; a failure is audited and answers `invalid_client`.
     */
    authenticateClientPrincipal: grant.authenticateClientPrincipal,

    /**
     * The principal behind an agent access token, or null (access-tokens.ts: signature with a
     * published key, issuer, audience, expiry, and the agent still live and active).
     */
    authenticateToken: accessTokens.verify,

    /** The claims of a live agent access token, or null (for RFC 7662 introspection). */
    accessTokenClaims: accessTokens.claims,

    principalFor,

    /**
     * The agent a session is opened for (REST and gRPC): the calling agent, which opens sessions
     * for itself only, or, for an admin key, the agent it names (`agent_id`, required then).
     */
    async actingAgent(
      principal: Principal | undefined,
      agentId: string | undefined,
    ): Promise<AgentPrincipal> {
      if (principal?.kind === 'agent') {
        if (agentId !== undefined && agentId !== principal.agentId)
          throw commonError('forbidden', { message: 'An agent opens sessions for itself only.' });
        return principal;
      }
      if (agentId === undefined)
        throw commonError('invalid_request', {
          message: 'With an admin key, name the agent: agent_id.',
          details: [{ path: 'body.agent_id', message: 'required with an admin key' }],
        });
      return principalFor(agentId);
    },

    /**
     * The agent an MCP client with a trusted issuer's token acts as (`NEXUS_MCP_ISSUERS`), by its
     * `agent_id`: a principal whose scopes are the agent's `allowed_scopes` that the user holds too
     * (both gates), and, only when asked, an in-process access token with those scopes for at most
     * `ttlSeconds` (client-credentials.ts `internalToken`). Undefined when the agent is not live
     * and active.
     */
    async actAs(
      agentId: string,
      userScopes: readonly string[],
      ttlSeconds: number,
    ): Promise<{ principal: AgentPrincipal; token: () => Promise<string> } | undefined> {
      const row = await store.findLiveByAgentId(agentId);
      if (row === undefined || row.disabled_at !== null) return undefined;
      const scopes = list(row.allowed_scopes).filter((s) => userScopes.includes(s));
      return {
        principal: principalOf(row, scopes),
        token: () => grant.internalToken(row, scopes, Math.max(1, ttlSeconds)),
      };
    },

    /** Deletes expired assertion ids (housekeeping). */
    async deleteExpiredAssertions(): Promise<number> {
      return store.deleteAssertionsBefore(now());
    },

    /**
     * The agent row by id if it is live and active, else undefined: what token-exchange/ reads
     * before it opens a session or calls a session token active (one primary-key query).
     */
    async activeRow(id: string): Promise<AgentsTable | undefined> {
      const row = await store.findById(id);
      return row === undefined || row.deleted_at !== null || row.disabled_at !== null ? undefined : row;
    },

    /** The `agent_id` of an agent by id, deleted or not (a session outlives its agent's deletion). */
    async agentIdOf(id: string): Promise<string | undefined> {
      return (await store.findById(id))?.agent_id;
    },
  };
}

export type AgentsService = ReturnType<typeof createAgentsService>;
