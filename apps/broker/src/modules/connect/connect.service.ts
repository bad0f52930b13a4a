import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Principal } from '../../auth/principal.ts';
import type { ConnectSessionsTable } from '../../db/schema.ts';
import { commonError } from '../../errors/common.errors.ts';
import { errorFrom, NexusError } from '../../errors/nexus-error.ts';
import { grantNames, principalMaySeeProvider } from '../agents/grants.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import type { ConnectionsService } from '../connections/connections.service.ts';
import { checkedConnectionConfig } from '../consent/connection-config.ts';
import { consentErrors } from '../consent/consent.errors.ts';
import type { ConsentService } from '../consent/consent.service.ts';
import { returnUrlAllowed } from '../consent/return-url.ts';
import { providerErrors } from '../providers/providers.errors.ts';
import type { ProviderView } from '../providers/providers.schemas.ts';
import type { ProvidersService } from '../providers/providers.service.ts';
import { connectErrors } from './connect.errors.ts';
import { type ConnectOutcome, failedOutcome } from './connect.outcome.ts';
import type { ConnectStore } from './connect.store.ts';

export interface CreateSessionRequest {
  readonly workspaceId: string;
  /** Provider ids, names or aliases to offer; absent: every provider the caller may connect. */
  readonly providers?: readonly string[] | undefined;
  readonly returnUrl: string;
  readonly connectionConfig?: Readonly<Record<string, string>> | undefined;
  /** The app confirms the user before activation (decision 0017); checked at creation. */
  readonly verify?: boolean | undefined;
}

export interface OfferedProvider {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly auth_type: string;
}

/** What the session's page shows: the offer, or why there is none. */
export type SessionView =
  | { readonly kind: 'unknown' }
  | { readonly kind: 'expired'; readonly outcome: ConnectOutcome }
  | { readonly kind: 'open'; readonly session: ConnectSessionsTable; readonly providers: OfferedProvider[] };

/** How long a second pick waits for the first to finish starting: 20 × 150 ms. */
const SAME_PICK_WAITS = 20;
const SAME_PICK_STEP_MS = 150;

/** Only the SHA-256 of a token is stored and looked up (the token is the capability). */
const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

/**
 * Hosted connect sessions (issue #21). An app creates one for a user; the user's browser opens its
 * URL, picks a provider, and is sent into the ordinary consent flow (`consent.start`), which comes
 * back to the broker's own finish page (`/connect/finish?session=<id>`). That page reads the
 * outcome from the database, never from its query: only an active connection is a success.
 */
export function createConnectService(deps: {
  store: ConnectStore;
  consent: Pick<ConsentService, 'start' | 'verifyWanted'>;
  providers: Pick<ProvidersService, 'list' | 'resolve'>;
  connections: Pick<ConnectionsService, 'describe'>;
  audit: Pick<AuditService, 'record'>;
  /** The app's return URLs: the same rules as request-connection's. */
  returnUrls: Parameters<typeof returnUrlAllowed>[1];
  baseUrl: string;
  ttlMs: number;
  now?: () => number;
}) {
  const { store } = deps;
  const now = deps.now ?? Date.now;
  const finishUrl = (id: string) => `${deps.baseUrl}/connect/finish?session=${encodeURIComponent(id)}`;

  async function offerFor(principal: Principal | undefined, refs: readonly string[] | undefined) {
    if (refs !== undefined) {
      const views = new Map<string, ProviderView>();
      for (const ref of refs) {
        const view = await deps.providers.resolve(ref);
        // Outside the grant is "not found", as everywhere else for this agent.
        if (!principalMaySeeProvider(principal, view.id))
          throw errorFrom(providerErrors, 'provider_not_found');
        views.set(view.id, view);
      }
      return { views: [...views.values()], explicit: true };
    }
    const views: ProviderView[] = [];
    for (const { id } of await deps.providers.list())
      if (principalMaySeeProvider(principal, id)) views.push(await deps.providers.resolve(id));
    return { views, explicit: false };
  }

  async function readOffer(session: ConnectSessionsTable): Promise<OfferedProvider[]> {
    const out: OfferedProvider[] = [];
    for (const id of JSON.parse(session.providers) as string[]) {
      try {
        const p = await deps.providers.resolve(id);
        out.push({ id: p.id, name: p.name, description: p.description ?? '', auth_type: p.auth_type });
      } catch (error) {
        // Deleted since the session was created: no longer offered.
        if (!(error instanceof NexusError && error.code === 'provider_not_found')) throw error;
      }
    }
    return out;
  }

  async function byToken(token: string): Promise<ConnectSessionsTable | undefined> {
    if (!/^ncs_[A-Za-z0-9_-]{43}$/.test(token)) return undefined;
    return store.findByTokenHash(hashToken(token));
  }

  const usable = (s: ConnectSessionsTable, t: number) => s.used_at === null && s.expires_at > t;

  /**
   * A second pick of the provider the session was used for (a double click, a reload of the pick)
   * goes where the first went while its connection is still pending; anything else is "used". The
   * first pick may still be starting (discovery, a secret backend): it is waited for, briefly.
   */
  async function samePick(id: string, providerId: string): Promise<string | undefined> {
    for (let attempt = 0; attempt < SAME_PICK_WAITS; attempt++) {
      const s = await store.find(id);
      if (s === undefined || s.used_at === null) return undefined;
      if (s.connection_id !== null && s.auth_url !== null) {
        const connection = await deps.connections.describe(s.connection_id);
        const pending = connection?.status === 'pending' && connection.provider_id === providerId;
        return pending ? s.auth_url : undefined;
      }
      // Claimed long ago without a connection: its start failed.
      if (now() - s.used_at > SAME_PICK_WAITS * SAME_PICK_STEP_MS) return undefined;
      await new Promise((resolve) => setTimeout(resolve, SAME_PICK_STEP_MS));
    }
    return undefined;
  }

  return {
    /** `POST /v1/connect-sessions`: checks everything request-connection would, then a single-use URL. */
    async create(ctx: AuditContext, principal: Principal | undefined, request: CreateSessionRequest) {
      if (!returnUrlAllowed(request.returnUrl, deps.returnUrls))
        throw errorFrom(consentErrors, 'return_url_not_allowed');
      if (principal?.kind === 'agent' && !grantNames(principal.allowedWorkspaces, request.workspaceId))
        throw commonError('forbidden', { message: 'This agent may not act for that user (workspace).' });
      deps.consent.verifyWanted(request.verify);
      const { views, explicit } = await offerFor(principal, request.providers);
      // A provider named explicitly must take the session's connection_config (400 otherwise); from
      // "every provider", those that cannot (a required per-connection value missing) are left out.
      const offered = views.filter((view) => {
        if (explicit) {
          checkedConnectionConfig(view, request.connectionConfig);
          return true;
        }
        try {
          checkedConnectionConfig(view, request.connectionConfig);
          return true;
        } catch (error) {
          if (error instanceof NexusError && error.code === 'invalid_connection_config') return false;
          throw error;
        }
      });
      if (offered.length === 0) throw errorFrom(connectErrors, 'connect_no_providers');
      const t = now();
      const id = randomUUID();
      const token = `ncs_${randomBytes(32).toString('base64url')}`;
      const expiresAt = t + deps.ttlMs;
      await store.insert({
        id,
        token_hash: hashToken(token),
        workspace_id: request.workspaceId,
        providers: JSON.stringify(offered.map((p) => p.id)),
        return_url: request.returnUrl,
        connection_config:
          request.connectionConfig === undefined ? null : JSON.stringify(request.connectionConfig),
        created_by: ctx.actor,
        expires_at: expiresAt,
        used_at: null,
        connection_id: null,
        auth_url: null,
        created_at: t,
        verify: request.verify === true ? 1 : 0,
      });
      // Housekeeping on the write path: sessions a day past their expiry are of no use to anyone.
      await store.deleteExpired(t - 86_400_000);
      await deps.audit.record(ctx, {
        action: 'connect_session.created',
        resourceType: 'connect_session',
        resourceId: id,
        details: { workspace_id: request.workspaceId, providers: offered.map((p) => p.name) },
      });
      return {
        id,
        token,
        url: `${deps.baseUrl}/connect/session?token=${token}`,
        expires_at: new Date(expiresAt).toISOString(),
        providers: offered.map((p) => ({ id: p.id, name: p.name })),
      };
    },

    /** The session's page: its providers while it is usable. Reading does not use it up. */
    async view(token: string): Promise<SessionView> {
      const session = await byToken(token);
      if (session === undefined) return { kind: 'unknown' };
      if (!usable(session, now()))
        return { kind: 'expired', outcome: failedOutcome(session, 'session_expired', deps.returnUrls) };
      return { kind: 'open', session, providers: await readOffer(session) };
    },

    /**
     * The user picked a provider: the session is used up, and the consent flow starts for the
     * session's user with its connection_config, coming back to the finish page.
     */
    async pick(
      ctx: AuditContext,
      token: string,
      providerId: string,
    ): Promise<
      | { readonly kind: 'redirect'; readonly location: string }
      | { readonly kind: 'unknown' | 'not_offered' }
      | { readonly kind: 'finished'; readonly outcome: ConnectOutcome }
    > {
      const session = await byToken(token);
      if (session === undefined) return { kind: 'unknown' };
      const t = now();
      const expired = {
        kind: 'finished' as const,
        outcome: failedOutcome(session, 'session_expired', deps.returnUrls),
      };
      if (!(JSON.parse(session.providers) as string[]).includes(providerId)) return { kind: 'not_offered' };
      if (session.expires_at <= t) return expired;
      if (session.used_at !== null || !(await store.claim(session.id, t))) {
        const again = await samePick(session.id, providerId);
        return again === undefined ? expired : { kind: 'redirect', location: again };
      }
      try {
        const started = await deps.consent.start(
          { ...ctx, actor: session.created_by },
          {
            workspaceId: session.workspace_id,
            providerRef: providerId,
            returnUrl: finishUrl(session.id),
            action: 'connect_session',
            verify: session.verify === 1 ? true : undefined,
            connectionConfig:
              session.connection_config === null ? undefined : JSON.parse(session.connection_config),
          },
        );
        await store.setConnection(session.id, started.connection_id, started.authUrl);
        return { kind: 'redirect', location: started.authUrl };
      } catch (error) {
        if (!(error instanceof NexusError)) throw error;
        return {
          kind: 'finished',
          outcome: failedOutcome(session, 'connect_start_failed', deps.returnUrls, error.code),
        };
      }
    },

    /**
     * The offer page's cancel: the session is used up, so nothing can be picked from it any more,
     * and the finish page tells the application (`cancelled`). A session already used (a pick in
     * another tab) is left as it is: the finish page says what became of it.
     */
    async cancel(
      token: string,
    ): Promise<{ readonly kind: 'unknown' } | { readonly kind: 'redirect'; readonly location: string }> {
      const session = await byToken(token);
      if (session === undefined) return { kind: 'unknown' };
      const t = now();
      if (usable(session, t)) await store.claim(session.id, t);
      return {
        kind: 'redirect',
        location: `/connect/finish?session=${encodeURIComponent(session.id)}&status=failed&error=cancelled`,
      };
    },

    /**
     * `/connect/finish?session=<id>`: the outcome of a session, from the database. Success only
     * when the session's own connection is active; otherwise the code the consent flow sent
     * (`error`, when it looks like a code) or why the session ended.
     */
    async finish(sessionId: string, error: string | undefined): Promise<ConnectOutcome | undefined> {
      const session = await store.find(sessionId);
      if (session === undefined) return undefined;
      const connection =
        session.connection_id === null ? undefined : await deps.connections.describe(session.connection_id);
      if (connection?.status === 'active') {
        const provider = await deps.providers.resolve(connection.provider_id).catch(() => undefined);
        return {
          status: 'success',
          connectionId: connection.id,
          provider: provider?.name ?? '',
          returnUrl: session.return_url,
          returnUrls: deps.returnUrls,
        };
      }
      // Without a code, the user left the flow (the page's cancel link sends `cancelled` itself).
      const code = error !== undefined && /^[a-z_]{1,64}$/.test(error) ? error : 'cancelled';
      return failedOutcome(session, code, deps.returnUrls);
    },
  };
}

export type ConnectService = ReturnType<typeof createConnectService>;
