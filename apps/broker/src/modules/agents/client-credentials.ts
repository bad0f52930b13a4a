/**
 * The `client_credentials` grant at `POST /oauth/token` (RFC 6749 §4.4): the agent authenticates
 * (client-auth.ts), its requested scopes are checked against `allowed_scopes`, and it gets a
 * short-lived access token (RFC 9068 `at+jwt`). Every refusal is audited.
 */
import { randomUUID } from 'node:crypto';
import { type FetchImplementation, SignJWT } from 'jose';
import type { AgentPrincipal } from '../../auth/principal.ts';
import type { AgentsTable } from '../../db/schema.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import { principalOf } from './access-tokens.ts';
import { list } from './agent-views.ts';
import { agentErrors } from './agents.errors.ts';
import type { AgentsStore } from './agents.store.ts';
import { AGENT_ID, type ClientAuthentication, createClientAuthenticator } from './client-auth.ts';
import type { SigningKeys } from './signing-keys.ts';

export function createClientCredentialsGrant(deps: {
  store: Pick<AgentsStore, 'findLiveByAgentId' | 'insertAssertion' | 'findSecretWithAgent'>;
  signingKeys: SigningKeys;
  audit: Pick<AuditService, 'record'>;
  /** The broker's issuer identifier (BASE_URL) and its token endpoint. */
  issuer: string;
  tokenEndpoint: string;
  tokenTtlSeconds: number;
  /** Fetch for agents' `jwks_uri` (the egress guard); jose's own fetch when absent. */
  jwksFetch?: FetchImplementation;
  now: () => number;
}) {
  const { audit, now } = deps;
  const authenticateClient = createClientAuthenticator(deps);

  /** A signed access token (RFC 9068) for an agent row, with these scopes, for `ttlSeconds`. */
  async function sign(row: AgentsTable, scopes: readonly string[], ttlSeconds: number) {
    const signer = await deps.signingKeys.signer();
    const issuedMs = now();
    const iat = Math.floor(issuedMs / 1000);
    const jti = randomUUID();
    // `iat_ms`: the issue time to the millisecond, so that a token issued just after the agent was
    // reactivated is told apart from one it held when deactivated in the same second.
    const token = await new SignJWT({ client_id: row.agent_id, scope: scopes.join(' '), iat_ms: issuedMs })
      .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'at+jwt' })
      .setIssuer(deps.issuer)
      .setAudience(deps.issuer)
      .setSubject(row.id)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ttlSeconds)
      .setJti(jti)
      .sign(signer.privateKey);
    return { token, jti };
  }

  /**
   * Who a refused client claimed to be, for the audit log (which read-scope keys can read): the
   * agent when one has that id, else `agent:unknown`. The field may hold anything: a secret pasted
   * into it (client id and secret swapped, an admin key) must not be stored, nor anything derived
   * from it that could be guessed back (a hash of a short password). The event's address and user
   * agent still tell attempts apart.
   */
  async function claimedActor(auth: ClientAuthentication): Promise<string> {
    const claimed = auth.basic?.clientId ?? auth.clientId;
    if (claimed === undefined || !AGENT_ID.test(claimed)) return 'agent:unknown';
    return (await deps.store.findLiveByAgentId(claimed)) === undefined ? 'agent:unknown' : `agent:${claimed}`;
  }

  /** The authenticated, active agent; otherwise the failure is audited and `invalid_client` thrown. */
  async function authenticatedAgent(ctx: AuditContext, auth: ClientAuthentication): Promise<AgentsTable> {
    const row = await authenticateClient(auth);
    if (row !== null && row.disabled_at === null) return row;
    await audit.record(
      { ...ctx, actor: row === null ? await claimedActor(auth) : `agent:${row.agent_id}` },
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
        await audit.record(actor, {
          action: 'agent.token_denied',
          resourceType: 'agent',
          resourceId: row.id,
          outcome: 'failure',
          details: { reason: 'scope_not_allowed', refused },
        });
        throw errorFrom(agentErrors, 'invalid_scope', { details: { refused } });
      }
      const { token, jti } = await sign(row, requested, deps.tokenTtlSeconds);
      await audit.record(actor, {
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
     * An access token the broker signs for itself, never handed to a client: `/mcp` calls the
     * credential proxy in process as the agent a trusted issuer's caller acts as (that caller holds
     * no agent token, and its own token must not travel). Not audited: it authenticates one
     * in-process request, whose own audit event names the agent.
     */
    internalToken: async (row: AgentsTable, scopes: readonly string[], ttlSeconds: number) =>
      (await sign(row, scopes, ttlSeconds)).token,
  };
}
