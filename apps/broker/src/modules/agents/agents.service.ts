import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { type FetchImplementation, SignJWT } from 'jose';
import type { AgentPrincipal } from '../../auth/principal.ts';
import type { Database } from '../../db/client.ts';
import type { AgentsTable } from '../../db/schema.ts';
import { commonError } from '../../errors/common.errors.ts';
import { checkIfMatch } from '../../errors/if-match.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import type { ProvidersService } from '../providers/providers.service.ts';
import { createAccessTokenVerifier, principalOf } from './access-tokens.ts';
import { agentErrors } from './agents.errors.ts';
import { createClientAuthenticator } from './client-auth.ts';
import { type AgentJwks, shownJwks } from './jwks.ts';
import type { SigningKeys } from './signing-keys.ts';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const list = (json: string) => JSON.parse(json) as string[];

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

export interface AgentView {
  id: string;
  agent_id: string;
  description: string;
  allowed_scopes: string[];
  allowed_providers: string[];
  allowed_workspaces: string[];
  allowed_secrets: string[];
  active: boolean;
  jwks_uri: string | null;
  has_jwks: boolean;
  jwks: { keys: Record<string, unknown>[] } | null;
  secrets: { id: string; created_at: string; expires_at: string | null }[];
  version: number;
  created_at: string;
  updated_at: string;
}

/** Client authentication presented at the token endpoint (RFC 6749 §2.3, RFC 7523). */
export interface ClientAuthentication {
  basic?: { clientId: string; secret: string };
  clientId?: string;
  clientSecret?: string;
  assertionType?: string;
  assertion?: string;
}

export function createAgentsService(deps: {
  db: Database;
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
  const k = deps.db.kysely;
  const now = deps.now ?? Date.now;
  const authenticateClient = createClientAuthenticator(deps);
  const accessTokens = createAccessTokenVerifier(deps);

  async function liveRow(ref: string): Promise<AgentsTable> {
    const q = k.selectFrom('agents').selectAll().where('deleted_at', 'is', null);
    const row = /^[0-9a-f-]{36}$/.test(ref)
      ? await q.where('id', '=', ref).executeTakeFirst()
      : await q.where('agent_id', '=', ref).executeTakeFirst();
    if (row === undefined) throw errorFrom(agentErrors, 'agent_not_found');
    return row;
  }

  async function view(row: AgentsTable): Promise<AgentView> {
    const t = now();
    const secrets = await k
      .selectFrom('agent_secrets')
      .select(['id', 'created_at', 'expires_at'])
      .where('agent_uuid', '=', row.id)
      .where('revoked_at', 'is', null)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', t)]))
      .orderBy('created_at')
      .execute();
    return {
      id: row.id,
      agent_id: row.agent_id,
      description: row.description,
      allowed_scopes: list(row.allowed_scopes),
      allowed_providers: list(row.allowed_providers),
      allowed_workspaces: list(row.allowed_workspaces),
      allowed_secrets: list(row.allowed_secrets),
      active: row.disabled_at === null,
      jwks_uri: row.jwks_uri,
      has_jwks: row.jwks !== null,
      jwks: row.jwks === null ? null : shownJwks(row.jwks),
      secrets: secrets.map((s) => ({
        id: s.id,
        created_at: iso(s.created_at)!,
        expires_at: iso(s.expires_at),
      })),
      version: row.version,
      created_at: iso(row.created_at)!,
      updated_at: iso(row.updated_at)!,
    };
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

  /** `nxs_<secret id>_<43 random chars>`, stored as its SHA-256; `client-auth.ts` finds it by the id. */
  async function newSecret(agentUuid: string, t: number): Promise<{ id: string; secret: string }> {
    const id = randomBytes(8).toString('hex');
    const secret = `nxs_${id}_${randomBytes(32).toString('base64url')}`;
    await k
      .insertInto('agent_secrets')
      .values({
        id,
        agent_uuid: agentUuid,
        secret_hash: sha256(secret),
        created_at: t,
        expires_at: null,
        revoked_at: null,
      })
      .execute();
    return { id, secret };
  }

  /** The authenticated, active agent; otherwise the failure is audited and `invalid_client` thrown. */
  async function authenticatedAgent(ctx: AuditContext, auth: ClientAuthentication): Promise<AgentsTable> {
    const row = await authenticateClient(auth);
    if (row !== null && row.disabled_at === null) return row;
    const claimed = row?.agent_id ?? auth.basic?.clientId ?? auth.clientId ?? 'unknown';
    await deps.audit.record(
      { ...ctx, actor: `agent:${claimed.slice(0, 64)}` },
      {
        action: 'agent.token_denied',
        resourceType: 'agent',
        resourceId: row?.id ?? null,
        outcome: 'failure',
        details: { reason: row === null ? 'authentication_failed' : 'deactivated' },
      },
    );
    throw errorFrom(agentErrors, 'invalid_client');
  }

  return {
    async create(ctx: AuditContext, input: AgentInput & { generate_secret: boolean }) {
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
        version: 1,
        created_at: t,
        updated_at: t,
        deleted_at: null,
      };
      try {
        await k.insertInto('agents').values(row).execute();
      } catch (cause) {
        const taken = await k
          .selectFrom('agents')
          .select('id')
          .where('agent_id', '=', input.agent_id)
          .where('deleted_at', 'is', null)
          .executeTakeFirst();
        if (taken)
          throw errorFrom(agentErrors, 'agent_id_taken', { cause, details: { agent_id: input.agent_id } });
        throw cause;
      }
      const secret = input.generate_secret ? await newSecret(id, t) : undefined;
      await deps.audit.record(ctx, {
        action: 'agent.created',
        resourceType: 'agent',
        resourceId: id,
        details: { agent_id: row.agent_id, allowed_scopes: list(row.allowed_scopes) },
      });
      return { ...(await view(row)), ...(secret ? { client_secret: secret.secret } : {}) };
    },

    async list(): Promise<AgentView[]> {
      const rows = await k
        .selectFrom('agents')
        .selectAll()
        .where('deleted_at', 'is', null)
        .orderBy('agent_id')
        .limit(1000)
        .execute();
      return Promise.all(rows.map(view));
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
      const result = await k
        .updateTable('agents')
        .set(set)
        .where('id', '=', row.id)
        .where('version', '=', row.version)
        .where('deleted_at', 'is', null)
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) !== 1) throw commonError('version_conflict');
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
      return view({ ...row, ...set } as AgentsTable);
    },

    async remove(ctx: AuditContext, ref: string, ifMatch?: string): Promise<void> {
      const row = await liveRow(ref);
      checkIfMatch(ifMatch, row.version);
      const t = now();
      await k.transaction().execute(async (trx) => {
        await trx
          .updateTable('agents')
          .set({ deleted_at: t, updated_at: t, version: row.version + 1 })
          .where('id', '=', row.id)
          .execute();
        await trx
          .updateTable('agent_secrets')
          .set({ revoked_at: t })
          .where('agent_uuid', '=', row.id)
          .where('revoked_at', 'is', null)
          .execute();
      });
      await deps.audit.record(ctx, {
        action: 'agent.deleted',
        resourceType: 'agent',
        resourceId: row.id,
        details: { agent_id: row.agent_id },
      });
    },

    /** A new client secret; the live ones keep working for `overlapSeconds`, then stop. */
    async rotateSecret(ctx: AuditContext, ref: string, overlapSeconds: number) {
      const row = await liveRow(ref);
      const t = now();
      await k
        .updateTable('agent_secrets')
        .set({ expires_at: t + overlapSeconds * 1000 })
        .where('agent_uuid', '=', row.id)
        .where('revoked_at', 'is', null)
        .where((eb) =>
          eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', t + overlapSeconds * 1000)]),
        )
        .execute();
      const secret = await newSecret(row.id, t);
      await deps.audit.record(ctx, {
        action: 'agent.secret_rotated',
        resourceType: 'agent',
        resourceId: row.id,
        details: { agent_id: row.agent_id, secret_id: secret.id, overlap_seconds: overlapSeconds },
      });
      return {
        secret_id: secret.id,
        client_secret: secret.secret,
        previous_expire_at: iso(t + overlapSeconds * 1000)!,
      };
    },

    async revokeSecret(ctx: AuditContext, ref: string, secretId: string): Promise<void> {
      const row = await liveRow(ref);
      const result = await k
        .updateTable('agent_secrets')
        .set({ revoked_at: now() })
        .where('id', '=', secretId)
        .where('agent_uuid', '=', row.id)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) !== 1) throw errorFrom(agentErrors, 'agent_secret_not_found');
      await deps.audit.record(ctx, {
        action: 'agent.secret_revoked',
        resourceType: 'agent',
        resourceId: row.id,
        details: { agent_id: row.agent_id, secret_id: secretId },
      });
    },

    /**
     * `client_credentials` at `POST /oauth/token`: authenticates the agent, checks the requested
     * scopes against its `allowed_scopes`, and signs a short-lived access token (RFC 9068 JWT).
     */
    async clientCredentials(ctx: AuditContext, auth: ClientAuthentication, scope: string | undefined) {
      const row = await authenticatedAgent(ctx, auth);
      const allowed = list(row.allowed_scopes);
      const requested =
        scope === undefined || scope.trim() === '' ? allowed : [...new Set(scope.trim().split(/\s+/))];
      const refused = requested.filter((s) => !allowed.includes(s));
      const actor = { ...ctx, actor: `agent:${row.agent_id}` };
      if (refused.length > 0) {
        await deps.audit.record(actor, {
          action: 'agent.token_denied',
          resourceType: 'agent',
          resourceId: row.id,
          outcome: 'failure',
          details: { reason: 'scope_not_allowed', refused },
        });
        throw errorFrom(agentErrors, 'invalid_scope', { details: { refused } });
      }
      const signer = await deps.signingKeys.signer();
      const iat = Math.floor(now() / 1000);
      const jti = randomUUID();
      const token = await new SignJWT({ client_id: row.agent_id, scope: requested.join(' ') })
        .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'at+jwt' })
        .setIssuer(deps.issuer)
        .setAudience(deps.issuer)
        .setSubject(row.id)
        .setIssuedAt(iat)
        .setExpirationTime(iat + deps.tokenTtlSeconds)
        .setJti(jti)
        .sign(signer.privateKey);
      await deps.audit.record(actor, {
        action: 'agent.token_issued',
        resourceType: 'agent',
        resourceId: row.id,
        details: { jti, scopes: requested, expires_in: deps.tokenTtlSeconds },
      });
      return {
        access_token: token,
        token_type: 'Bearer' as const,
        expires_in: deps.tokenTtlSeconds,
        scope: requested.join(' '),
      };
    },

    /**
     * The agent authenticating at the token endpoint (secret or assertion), as a principal with its
     * current grant; a failure is audited and answers `invalid_client`.
     */
    async authenticateClientPrincipal(
      ctx: AuditContext,
      auth: ClientAuthentication,
    ): Promise<AgentPrincipal> {
      const row = await authenticatedAgent(ctx, auth);
      return principalOf(row, list(row.allowed_scopes));
    },

    /**
     * The principal behind an agent access token, or null (access-tokens.ts: signature with a
     * published key, issuer, audience, expiry, and the agent still live and active).
     */
    authenticateToken: accessTokens.verify,

    /** The claims of a live agent access token, or null (for RFC 7662 introspection). */
    accessTokenClaims: accessTokens.claims,

    /** An operator acting for an agent (admin key + `agent_id`): the agent's own permissions. */
    async principalFor(ref: string): Promise<AgentPrincipal> {
      const row = await liveRow(ref);
      if (row.disabled_at !== null) throw commonError('forbidden', { message: 'The agent is deactivated.' });
      return principalOf(row, list(row.allowed_scopes));
    },

    /** Deletes expired assertion ids (housekeeping). */
    async deleteExpiredAssertions(): Promise<number> {
      const result = await k
        .deleteFrom('agent_assertions')
        .where('expires_at', '<', now())
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}

export type AgentsService = ReturnType<typeof createAgentsService>;
