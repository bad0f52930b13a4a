import { createHash, randomBytes } from 'node:crypto';
import type { Principal } from '../../auth/principal.ts';
import { openText, sealText } from '../../crypto/envelope.ts';
import type { KeyRing } from '../../crypto/keyring.ts';
import type { ConsentConfirmationsTable } from '../../db/schema.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import { grantNames } from '../agents/grants.ts';
import type { AuditContext } from '../audit/audit.service.ts';
import type { ConnectionsService } from '../connections/connections.service.ts';
import type { ActivationTokens } from '../connections/connections.types.ts';
import { revokeTokens } from '../connections/revoke-upstream.ts';
import type { OAuthClient } from '../providers/oauth-client.ts';
import type { StoredProfile } from '../providers/providers.schemas.ts';
import type { ProvidersService } from '../providers/providers.service.ts';
import type { ConfirmStore } from './confirm.store.ts';
import { loadForConnection } from './connection-config.ts';
import { consentErrors } from './consent.errors.ts';
import { returnUrlAllowed, withOutcome } from './return-url.ts';

/**
 * `hold`'s answer when the consent was to be confirmed but no verifier is configured any more
 * (removed while the user signed in): the caller fails the connection; the grant was revoked.
 */
export const VERIFIER_GONE = 'verifier_unavailable' as const;

/**
 * Consent bound to the person who asked (issue #21, decision 0017). Whoever opens an authorization
 * link binds *their* account to the user the link was asked for; forwarded (or phished), that is
 * someone else's account. With a verifier configured, a consent that must be confirmed does not
 * activate at the callback: its credentials are held, sealed, and the browser goes to the app's
 * verifier page with a single-use `flow_id`. The app's server, which knows who is signed in,
 * confirms with `POST /v1/connect/confirm {flow_id, user_id}`: the same user activates the
 * connection; another fails it (`user_mismatch`) and revokes the grant at the provider.
 */

/** What the row holds, sealed: the activation and its audit details (never a secret in those). */
interface Held {
  readonly activation: ActivationTokens;
  readonly details: Record<string, unknown>;
}

export const heldBinding = (id: string) => ({ table: 'consent_confirmations', id, field: 'held' });

/** 32 random bytes, base64url: the capability the verifier page receives. Only its SHA-256 is kept. */
const FLOW_ID = /^[A-Za-z0-9_-]{43}$/;
const hashFlowId = (flowId: string) => createHash('sha256').update(flowId).digest('hex');

export type ConfirmResult = {
  readonly status: 'active' | 'failed';
  readonly connection_id: string;
  readonly error?: string;
  readonly provider_revoked?: boolean;
  /** The return URL with the outcome appended; null when it is no longer allowed. */
  readonly redirect_url: string | null;
};

export function createConfirmService(deps: {
  store: ConfirmStore;
  verifier?: { readonly url: string; readonly required: boolean } | undefined;
  connections: Pick<ConnectionsService, 'activate' | 'markFailed' | 'describe'>;
  providers: Pick<ProvidersService, 'loadForUse'>;
  oauthClient: (profile: StoredProfile, clientSecret: string | undefined) => Promise<OAuthClient>;
  ring: KeyRing;
  returnUrls: Parameters<typeof returnUrlAllowed>[1];
  now: () => number;
}) {
  const { store, ring, now } = deps;
  const back = (returnUrl: string, outcome: Record<string, string>) =>
    returnUrlAllowed(returnUrl, deps.returnUrls) ? withOutcome(returnUrl, outcome) : null;

  /** RFC 7009 at the provider for credentials that were never kept. Best effort: false on failure. */
  async function revokeHeld(
    row: { provider_id: string; connection_id: string },
    activation: ActivationTokens,
  ): Promise<boolean> {
    if (activation.kind !== 'oauth2') return false;
    try {
      const stored = (await deps.connections.describe(row.connection_id))?.connection_config ?? null;
      const values = activation.connectionConfig ?? stored;
      const { profile, clientSecret } = await loadForConnection(deps.providers, row.provider_id, values);
      return await revokeTokens(await deps.oauthClient(profile, clientSecret), activation.tokens);
    } catch {
      return false;
    }
  }

  /**
   * What a claimed confirmation comes to: activation for the requested user, else failure.
   * `progress.revoked` is set once the held grant may have been revoked at the provider: from
   * then on the claim is never given back (a retry would activate dead tokens).
   */
  async function decide(
    ctx: AuditContext,
    claimed: ConsentConfirmationsTable & { held: Uint8Array },
    userId: string,
    t: number,
    progress: { revoked: boolean },
  ): Promise<ConfirmResult> {
    const { activation, details } = unseal(claimed, t);
    const id = claimed.connection_id;
    if (userId !== claimed.workspace_id) {
      progress.revoked = true;
      const revoked = await revokeHeld(claimed, activation);
      await deps.connections.markFailed(id, 'user_mismatch', {
        ctx,
        detail: `confirmed for another user than requested; grant revoked at the provider: ${revoked ? 'yes' : 'no'}`,
      });
      return {
        status: 'failed',
        connection_id: id,
        error: 'user_mismatch',
        provider_revoked: revoked,
        redirect_url: back(claimed.return_url, { status: 'failed', error: 'user_mismatch' }),
      };
    }
    const activated = await deps.connections.activate(ctx, id, activation, { ...details, confirmed: true });
    if (!activated.activated) {
      // Expired or revoked while waiting: nothing was kept, so the grant goes too.
      const revoked = await revokeHeld(claimed, activation);
      return {
        status: 'failed',
        connection_id: id,
        error: 'connection_not_pending',
        provider_revoked: revoked,
        redirect_url: back(claimed.return_url, { status: 'failed', error: 'connection_not_pending' }),
      };
    }
    return {
      status: 'active',
      connection_id: id,
      redirect_url: back(claimed.return_url, {
        status: 'success',
        connection_id: id,
        provider: activated.providerName ?? '',
      }),
    };
  }

  /** The held activation, with `expires_in` counted from the exchange, not from the confirmation. */
  function unseal(row: { id: string; held: Uint8Array; held_at: number | null }, t: number): Held {
    const held = JSON.parse(openText(ring, row.held, heldBinding(row.id))) as Held;
    const a = held.activation;
    if (a.kind !== 'oauth2' || typeof a.tokens.expires_in !== 'number' || row.held_at === null) return held;
    const elapsed = Math.floor((t - row.held_at) / 1000);
    return {
      ...held,
      activation: { ...a, tokens: { ...a.tokens, expires_in: Math.max(0, a.tokens.expires_in - elapsed) } },
    };
  }

  return {
    /**
     * At request time: whether this consent must be confirmed. `verify: true` without a verifier,
     * or `verify: false` when every consent must be, is a 400 before anything is written.
     */
    wanted(verify: boolean | undefined): boolean {
      if (verify === true && deps.verifier === undefined)
        throw errorFrom(consentErrors, 'verifier_not_configured');
      if (verify === false && deps.verifier?.required)
        throw errorFrom(consentErrors, 'verification_required');
      return verify === true || deps.verifier?.required === true;
    },

    /** At request time, after the flow row: the caller (audit actor) is the only one who may confirm. */
    async open(
      ctx: AuditContext,
      flow: {
        id: string;
        connectionId: string;
        providerId: string;
        workspaceId: string;
        returnUrl: string;
        expiresAt: number;
      },
    ): Promise<void> {
      await store.insert({
        id: flow.id,
        connection_id: flow.connectionId,
        provider_id: flow.providerId,
        workspace_id: flow.workspaceId,
        requested_by: ctx.actor,
        return_url: flow.returnUrl,
        flow_hash: null,
        held: null,
        held_at: null,
        expires_at: flow.expiresAt,
        used_at: null,
        created_at: now(),
      });
    },

    /**
     * After the exchange (or the capture), before activation: when the consent flow must be
     * confirmed, holds what activation would store and answers the verifier page's URL with a new
     * `flow_id`; undefined when it need not be (the caller activates as before).
     */
    async hold(
      consentFlowId: string,
      activation: ActivationTokens,
      details: Record<string, unknown> = {},
    ): Promise<string | typeof VERIFIER_GONE | undefined> {
      const row = await store.find(consentFlowId);
      if (row === undefined) return undefined;
      // Asked for a confirmation, and the verifier was turned off since: fail closed, keep nothing.
      if (deps.verifier === undefined) {
        await revokeHeld(row, activation);
        return VERIFIER_GONE;
      }
      const flowId = randomBytes(32).toString('base64url');
      const held: Held = { activation, details };
      await store.hold(row.id, {
        flow_hash: hashFlowId(flowId),
        held: sealText(ring, JSON.stringify(held), heldBinding(row.id)),
        held_at: now(),
        // The consent's own deadline: its pending connection expires then.
        expires_at: row.expires_at,
      });
      return withOutcome(deps.verifier.url, { flow_id: flowId });
    },

    /** `POST /v1/connect/confirm`: the app's server says who is signed in. */
    async confirm(
      ctx: AuditContext,
      principal: Principal | undefined,
      flowId: string,
      userId: string,
    ): Promise<ConfirmResult> {
      const row = FLOW_ID.test(flowId) ? await store.findByHash(hashFlowId(flowId)) : undefined;
      // Another caller's flow is unknown, as another tenant's resource is everywhere else; so is
      // one an agent's grant no longer covers (its user or provider taken from it since).
      if (
        row === undefined ||
        row.requested_by !== ctx.actor ||
        row.flow_hash === null ||
        (principal?.kind === 'agent' &&
          !(
            grantNames(principal.allowedWorkspaces, row.workspace_id) &&
            grantNames(principal.allowedProviders, row.provider_id)
          ))
      )
        throw errorFrom(consentErrors, 'confirm_flow_unknown');
      const t = now();
      if (row.used_at !== null) throw errorFrom(consentErrors, 'confirm_flow_used');
      if (row.expires_at <= t) throw errorFrom(consentErrors, 'confirm_flow_expired');
      const claimed = await store.claim(row.id, t);
      if (claimed?.held == null) throw errorFrom(consentErrors, 'confirm_flow_used');
      const held = claimed.held;
      const progress = { revoked: false };
      try {
        return await decide(ctx, { ...claimed, held }, userId, t, progress);
      } catch (error) {
        // Nothing was decided (an outage, a key not in the ring): the claim is given back, so the
        // app's retry confirms the same flow once the cause is gone, instead of losing the
        // credentials to a 409 and leaving the grant alive at the provider. Only while the
        // connection is still pending: an activation that committed before a later step failed
        // (its audit event, its events) decided, and a second one would overwrite newer tokens.
        if (!progress.revoked) {
          const connection = await deps.connections.describe(claimed.connection_id).catch(() => undefined);
          if (connection?.status === 'pending')
            await store.release(claimed.id, t, held).catch(() => undefined);
        }
        throw error;
      }
    },

    /**
     * Housekeeping: expired confirmations that still hold credentials (never confirmed) are revoked
     * at the provider (best effort, at most 20 a run) and removed; then empty expired rows go.
     */
    async deleteExpired(before: number): Promise<number> {
      const held = await store.expiredHeld(before, 20);
      for (const row of held) {
        if (row.held === null) continue;
        try {
          await revokeHeld(row, unseal({ ...row, held: row.held }, before).activation);
        } catch {
          // A key no longer in the ring: the copy is erased below all the same.
        }
      }
      await store.remove(held.map((r) => r.id));
      return held.length + (await store.deleteExpired(before));
    },
  };
}

export type ConfirmService = ReturnType<typeof createConfirmService>;
