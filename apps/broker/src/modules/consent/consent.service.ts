import { randomBytes, randomUUID } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import type { Principal } from '../../auth/principal.ts';
import type { SecretBytes } from '../../config/secret-value.ts';
import { openText, sealText } from '../../crypto/envelope.ts';
import type { KeyRing } from '../../crypto/keyring.ts';
import { AUTHORIZATION_ERRORS } from '../../errors/authorization-errors.ts';
import { commonError } from '../../errors/common.errors.ts';
import { errorFrom, NexusError } from '../../errors/nexus-error.ts';
import { grantNames } from '../agents/grants.ts';
import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import type { ConnectionsService } from '../connections/connections.service.ts';
import type { Activation } from '../connections/lifecycle.ts';
import { CATALOG_PARAMS } from '../providers/catalog-params.validate.ts';
import type { OAuthClient } from '../providers/oauth-client.ts';
import { providerErrors } from '../providers/providers.errors.ts';
import type { ProviderView, StoredProfile } from '../providers/providers.schemas.ts';
import type { ProvidersService } from '../providers/providers.service.ts';
import { CORE_AUTHORIZE_PARAMS } from '../providers/providers.validate.ts';
import { type CallbackStep, callbackFailure, passedOn } from './callback-failure.ts';
import { createConfirmService, VERIFIER_GONE } from './confirm.service.ts';
import { checkedConnectionConfig, loadForConnection, loadForFlow, withLearnt } from './connection-config.ts';
import { type ConsentReturnCode, consentErrors } from './consent.errors.ts';
import type { ConsentStore } from './consent.store.ts';
import { exchangeParameters, metadataKeys, truthy, withoutIss } from './consent-params.ts';
import { returnUrlAllowed, withOutcome } from './return-url.ts';
import { signState, verifyState } from './state.ts';
import { readTokenAnswer } from './token-answer.ts';

/** A consent flow (and its pending connection) must complete within 10 minutes. */
export const FLOW_TTL_MS = 10 * 60_000;

export const verifierBinding = (flowId: string) => ({
  table: 'consent_flows',
  id: flowId,
  field: 'verifier',
});

export interface StartRequest {
  readonly workspaceId: string;
  readonly providerRef: string;
  /** Null, absent or empty: the provider's default scopes (the original Go SDK sends `null`). */
  readonly scopes?: readonly string[] | null | undefined;
  readonly returnUrl: string;
  /**
   * The original's `action` (REST body, gRPC field 6): a caller's label for why the connection is
   * asked for. It changes nothing; the audit event records it.
   */
  readonly action?: string | undefined;
  /**
   * The original Go SDK's `metadata` (any JSON, bounded at the edge). Not stored: it is the
   * caller's, may hold anything, and the broker has no use for it. The audit event records its
   * top-level key names only, never a value.
   */
  readonly metadata?: unknown;
  /** The caller; an agent may start connections only for providers and users in its grant. */
  readonly principal?: Principal | undefined;
  /** Values of the provider's `params.connection_parameters` (decision 0015), checked here. */
  readonly connectionConfig?: Readonly<Record<string, unknown>> | undefined;
  /** The app confirms the user before activation (decision 0017); absent: the operator's default. */
  readonly verify?: boolean | undefined;
}

export interface StartResult {
  authUrl: string;
  state: string;
  scopes: string[];
  provider_id: string;
  connection_id: string;
}

/** The callback's outcome: a redirect to the caller's return URL, or (only when that URL cannot be trusted) a page. */
export type CallbackOutcome =
  | { readonly kind: 'redirect'; readonly location: string }
  | { readonly kind: 'page'; readonly status: number; readonly title: string; readonly message: string };

const PARAM_SKIP = new Set([
  'skip_scope_on_auth',
  'skip_scope_on_exchange',
  'credential_schema',
  'auth_strategy',
  'token_request_format',
  'revocation_endpoint',
  'validation',
  'jwks_uri',
  // Catalogue settings (pkce, scope_separator, token_response, template…): never URL parameters.
  ...CATALOG_PARAMS,
]);

/**
 * What the consent flow reports to metrics (http/original-metrics.ts keeps the original's names).
 * Outcomes only: never a user, a connection or a credential.
 */
export interface ConsentMetrics {
  /** A connection request answered (OAuth or capture link); `openid` when that scope was asked. */
  consentStarted(openid: boolean): void;
  /** An authorization code exchanged (success: the connection is active) or not, and how long it took. */
  codeExchanged(outcome: 'success' | 'error', seconds: number): void;
  /** An id_token verified at the callback (or refused), and how long checking the answer took. */
  idTokenChecked(outcome: 'success' | 'error', seconds: number): void;
}

const seconds = (since: number) => (performance.now() - since) / 1000;

export function createConsentService(deps: {
  store: ConsentStore;
  /** Creates the pending connection, fails or activates it (credentials, superseding, audit, events). */
  connections: Pick<ConnectionsService, 'createPending' | 'markFailed' | 'activate' | 'describe'>;
  providers: Pick<ProvidersService, 'resolve' | 'loadForUse'>;
  oauthClient: (
    profile: StoredProfile,
    clientSecret: string | undefined,
    options?: { openid?: boolean },
  ) => Promise<OAuthClient>;
  audit: Pick<AuditService, 'record'>;
  ring: KeyRing;
  stateKey: SecretBytes;
  redirectUri: string;
  capturePageUrl: string;
  returnUrls: { allowedDomains: readonly string[]; allowLoopback: boolean; requireHttps: boolean };
  metrics?: ConsentMetrics;
  /** NEXUS_CONNECT_VERIFIER_URL / _REQUIRED (confirm.service.ts); undefined: no confirmation step. */
  verifier?: { readonly url: string; readonly required: boolean } | undefined;
  now?: () => number;
}) {
  const { store, connections, ring, audit } = deps;
  const now = deps.now ?? Date.now;
  const confirmation = createConfirmService({ ...deps, store: store.confirmations, now });
  const allowed = (url: string) => returnUrlAllowed(url, deps.returnUrls);

  function buildAuthorizationUrl(
    provider: ProviderView,
    profile: StoredProfile,
    oc: OAuthClient,
    /** `challenge`: the PKCE code challenge (S256); undefined for a provider without PKCE. */
    flow: { state: string; challenge: string | undefined; nonce: string | undefined; scopes: string[] },
  ): string {
    const url = new URL(oc.as.authorization_endpoint!);
    // Extra parameters first; the core ones are set after, so nothing can override them.
    for (const [key, value] of Object.entries(profile.params)) {
      if (
        typeof value === 'string' &&
        !PARAM_SKIP.has(key) &&
        !CORE_AUTHORIZE_PARAMS.has(key.toLowerCase())
      ) {
        url.searchParams.set(key, value);
      }
    }
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', provider.client_id!);
    url.searchParams.set('redirect_uri', deps.redirectUri);
    if (!truthy(profile.params.skip_scope_on_auth) && flow.scopes.length > 0)
      url.searchParams.set('scope', oc.joinScopes(flow.scopes));
    else url.searchParams.delete('scope');
    url.searchParams.set('state', flow.state);
    if (flow.challenge !== undefined) {
      url.searchParams.set('code_challenge', flow.challenge);
      url.searchParams.set('code_challenge_method', 'S256');
    } else {
      // `params.pkce: false`: a provider that refuses PKCE (decision 0015).
      url.searchParams.delete('code_challenge');
      url.searchParams.delete('code_challenge_method');
    }
    if (flow.nonce !== undefined) url.searchParams.set('nonce', flow.nonce);
    else url.searchParams.delete('nonce');
    return url.toString();
  }

  function failed(returnUrl: string, error: string): CallbackOutcome {
    if (!allowed(returnUrl)) return untrusted();
    return { kind: 'redirect', location: withOutcome(returnUrl, { status: 'failed', error }) };
  }

  function untrusted(): CallbackOutcome {
    return {
      kind: 'page',
      status: 400,
      title: 'This sign-in link is not valid',
      message:
        'The link is damaged, was not issued by this service, or its destination is no longer allowed. Start the connection again from the application.',
    };
  }

  return {
    /** `POST /v1/request-connection` and `POST /auth/consent-spec`: a pending connection and where to send the user. */
    async start(ctx: AuditContext, request: StartRequest): Promise<StartResult> {
      if (!allowed(request.returnUrl)) throw errorFrom(consentErrors, 'return_url_not_allowed');
      const provider = await deps.providers.resolve(request.providerRef);
      const p = request.principal;
      if (p?.kind === 'agent') {
        // A provider outside the grant is "not found", as it is everywhere else for this agent.
        if (!grantNames(p.allowedProviders, provider.id))
          throw errorFrom(providerErrors, 'provider_not_found');
        if (!grantNames(p.allowedWorkspaces, request.workspaceId))
          throw commonError('forbidden', { message: 'This agent may not act for that user (workspace).' });
      }
      const config = checkedConnectionConfig(provider, request.connectionConfig);
      const verify = confirmation.wanted(request.verify);
      const asked = request.scopes ?? [];
      const scopes = [...new Set(asked.length > 0 ? asked : provider.scopes)];
      const t = now();
      const connectionId = randomUUID();
      const flowId = randomBytes(18).toString('base64url');
      const expiresAt = t + FLOW_TTL_MS;
      const state = signState(deps.stateKey, { flowId, expiresAt });
      // Everything that can refuse the request (a provider whose secret or discovery document
      // cannot be read, including the document that decides how an openid provider's id_tokens
      // are treated) runs before the first write: a refusal leaves no pending connection behind
      // (issue #18).
      let authUrl: string;
      let verifier: Uint8Array | null = null;
      let nonce: string | null = null;
      if (provider.auth_type === 'oauth2') {
        const { profile, clientSecret } = await loadForConnection(deps.providers, provider.id, config);
        const openid = scopes.includes('openid');
        const oc = await deps.oauthClient(profile, clientSecret, { openid });
        // Generated and sealed even without PKCE: a flow with a verifier is an OAuth flow.
        const codeVerifier = oauth.generateRandomCodeVerifier();
        // A nonce whenever openid is asked for, even when the id_token will be discarded: some
        // providers require one, and whether it is verified is decided again at the callback.
        nonce = openid ? oauth.generateRandomNonce() : null;
        verifier = sealText(ring, codeVerifier, verifierBinding(flowId));
        authUrl = buildAuthorizationUrl(provider, profile, oc, {
          state,
          challenge: oc.pkce ? await oauth.calculatePKCECodeChallenge(codeVerifier) : undefined,
          nonce: nonce ?? undefined,
          scopes,
        });
      } else {
        authUrl = `${deps.capturePageUrl}?state=${encodeURIComponent(state)}`;
      }
      await connections.createPending({
        id: connectionId,
        workspaceId: request.workspaceId,
        providerId: provider.id,
        scopes,
        expiresAt,
        connectionConfig: config,
      });
      await store.insert({
        id: flowId,
        connection_id: connectionId,
        provider_id: provider.id,
        verifier,
        nonce,
        redirect_uri: deps.redirectUri,
        return_url: request.returnUrl,
        scopes: JSON.stringify(scopes),
        expires_at: expiresAt,
        used_at: null,
        created_at: t,
      });
      if (verify)
        await confirmation.open(ctx, {
          ...request,
          id: flowId,
          connectionId,
          providerId: provider.id,
          expiresAt,
        });
      await audit.record(ctx, {
        action: 'connection.requested',
        resourceType: 'connection',
        resourceId: connectionId,
        details: {
          provider: provider.name,
          workspace_id: request.workspaceId,
          scopes,
          ...(verify ? { confirm: true } : {}),
          ...(request.action ? { request_action: request.action.slice(0, 256) } : {}),
          ...metadataKeys(request.metadata),
        },
      });
      deps.metrics?.consentStarted(scopes.includes('openid'));
      return { authUrl, state, scopes, provider_id: provider.id, connection_id: connectionId };
    },

    /**
     * `GET /auth/callback`. Every failure with a trustworthy return URL ends in a redirect there
     * with `status=failed&error=<code>`; the user's browser never sees a JSON error.
     */
    async callback(params: URLSearchParams, origin: AuditContext): Promise<CallbackOutcome> {
      const stateText = params.get('state') ?? '';
      const checked = verifyState(deps.stateKey, stateText);
      if (!checked.ok) return untrusted();
      const t = now();
      const flow = await store.consume(checked.state.flowId, t);
      const ctx = { ...origin, actor: 'user:consent' };
      if (flow === undefined) {
        const known = await store.find(checked.state.flowId);
        if (known === undefined) return untrusted();
        return failed(known.return_url, known.used_at !== null ? 'state_reused' : 'state_expired');
      }
      const fail = async (error: string, detail?: string): Promise<CallbackOutcome> => {
        await connections.markFailed(flow.connection_id, error, { ctx, detail });
        return failed(flow.return_url, error);
      };
      if (!allowed(flow.return_url)) {
        await connections.markFailed(flow.connection_id, 'return_url_not_allowed');
        return untrusted();
      }
      const upstreamError = params.get('error');
      if (upstreamError !== null) {
        // Standard codes only: no one holding the authorization URL can send one of the broker's.
        return fail(AUTHORIZATION_ERRORS.has(upstreamError) ? upstreamError : 'authorization_failed');
      }
      if (flow.verifier === null) return fail('not_an_oauth_flow');
      const exchangeStarted = performance.now();
      const exchangeFailed = (error: ConsentReturnCode, detail?: string) => {
        deps.metrics?.codeExchanged('error', seconds(exchangeStarted));
        return fail(error, detail);
      };
      let tokens: oauth.TokenEndpointResponse;
      let learnt: Awaited<ReturnType<typeof withLearnt>>;
      let idTokenStarted: number | undefined;
      let step: CallbackStep = 'setup';
      try {
        const { profile, clientSecret, stored } = await loadForFlow(deps, flow);
        const openid = (JSON.parse(flow.scopes) as string[]).includes('openid');
        const oc = await deps.oauthClient(profile, clientSecret, { openid });
        const codeVerifier = openText(ring, flow.verifier, verifierBinding(flow.id));
        step = 'authorization_response';
        const callbackParams = oauth.validateAuthResponse(
          oc.as,
          oc.client,
          oc.issuerKnown ? params : withoutIss(params),
          stateText,
        );
        step = 'token_request';
        const response = await oauth.authorizationCodeGrantRequest(
          oc.as,
          oc.client,
          oc.auth,
          callbackParams,
          flow.redirect_uri,
          // Read from the provider now: a change of `params.pkce` during the flow's 10 minutes fails it.
          oc.pkce ? codeVerifier : oauth.nopkce,
          { ...oc.requestOptions(), additionalParameters: exchangeParameters(profile, oc, flow.scopes) },
        );
        tokens = await readTokenAnswer(oc, response, { openid, nonce: flow.nonce }, (next) => {
          step = next;
          if (next === 'id_token' && openid) idTokenStarted = performance.now();
        });
        if (idTokenStarted !== undefined && tokens.id_token !== undefined)
          deps.metrics?.idTokenChecked('success', seconds(idTokenStarted));
        learnt = await withLearnt(profile, stored, tokens, oc);
      } catch (error) {
        const failure = callbackFailure(step, error);
        if (idTokenStarted !== undefined && failure === 'id_token_invalid')
          deps.metrics?.idTokenChecked('error', seconds(idTokenStarted));
        return exchangeFailed(failure, error instanceof Error ? error.message : undefined);
      }
      if (!learnt.ok) return exchangeFailed('learnt_value_invalid', learnt.detail);
      // A consent the app must confirm is held here, and the browser goes to its verifier page.
      const verifierAt = await confirmation.hold(flow.id, learnt.activation);
      if (verifierAt === VERIFIER_GONE) return fail(VERIFIER_GONE);
      if (verifierAt !== undefined) {
        deps.metrics?.codeExchanged('success', seconds(exchangeStarted));
        return { kind: 'redirect', location: verifierAt };
      }
      let activation: Activation;
      try {
        activation = await connections.activate(ctx, flow.connection_id, learnt.activation);
      } catch (error) {
        // The credentials could not be stored (nothing changed). The code only: the backend's own
        // text (paths, ARNs) stays out of the redirect and audit.
        if (error instanceof NexusError) return exchangeFailed(passedOn(error));
        deps.metrics?.codeExchanged('error', seconds(exchangeStarted));
        throw error;
      }
      if (!activation.activated) return exchangeFailed('connection_not_pending');
      deps.metrics?.codeExchanged('success', seconds(exchangeStarted));
      return {
        kind: 'redirect',
        location: withOutcome(flow.return_url, {
          status: 'success',
          connection_id: flow.connection_id,
          provider: activation.providerName ?? '',
        }),
      };
    },

    /**
     * Housekeeping: deletes flows (used or not) that expired before `before`, and confirmations past
     * their deadline (now: an unconfirmed hold is revoked at the provider first); answers how many.
     */
    deleteExpiredFlows: async (before: number): Promise<number> =>
      (await store.deleteExpired(before)) + (await confirmation.deleteExpired(now())),

    /** `POST /v1/connect/confirm` (confirm.service.ts). */
    confirm: confirmation.confirm,
    /** Whether a request's `verify` is accepted, and whether it means a confirmation (400s otherwise). */
    verifyWanted: confirmation.wanted,
    verifierOrigin: deps.verifier === undefined ? null : new URL(deps.verifier.url).origin,
    /** The capture form's step before activation, as the callback's (confirm.service.ts). */
    holdForConfirmation: confirmation.hold,
  };
}

export type ConsentService = ReturnType<typeof createConsentService>;
