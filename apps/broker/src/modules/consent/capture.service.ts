import type { SecretBytes } from '../../config/secret-value.ts';
import { EgressError, type SafeFetch } from '../../egress/safe-fetch.ts';
import { commonError } from '../../errors/common.errors.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { AuditContext } from '../audit/audit.service.ts';
import type { ConnectionsService } from '../connections/connections.service.ts';
import type { StoredProfile } from '../providers/providers.schemas.ts';
import type { ProvidersService } from '../providers/providers.service.ts';
import { probeSpecFor } from '../providers/validation-probe.ts';
import { applyStrategy, type OutgoingRequest, StrategyNotApplicable } from '../strategies/apply.ts';
import { strategyFor } from '../strategies/strategy.ts';
import { type CaptureField, captureFields, checkCaptured, credentialSchema } from './capture.schema.ts';
import { VERIFIER_GONE } from './confirm.service.ts';
import { loadForFlow } from './connection-config.ts';
import { consentErrors } from './consent.errors.ts';
import type { ConsentService } from './consent.service.ts';
import type { ConsentStore } from './consent.store.ts';
import { returnUrlAllowed, withOutcome } from './return-url.ts';
import { verifyState } from './state.ts';

export interface CaptureForm {
  readonly provider: { readonly id: string; readonly name: string; readonly description: string };
  readonly fields: readonly CaptureField[];
  /** The same fields as a JSON Schema: the original's capture-schema answer (capture.schema.ts). */
  readonly schema: Record<string, unknown>;
  readonly expires_at: string;
  /** Origin of the return URL, so the page's CSP lets the post-submit redirect go there. */
  readonly return_origin: string | null;
  /** Origin of the verifier page, where the submit goes first when the app confirms (decision 0017). */
  readonly verifier_origin: string | null;
  /** The provider's `params.capture_help` and `params.docs_url` (decision 0015), shown on the page. */
  readonly help: string | undefined;
  readonly docs_url: string | undefined;
}

/**
 * Hosted capture for static-credential providers (api_key, basic_auth, header, query_param,
 * hmac_payload, aws_sigv4). The signed state from request-connection is the capability: only a
 * pending, unexpired flow of a static provider can receive credentials, and only once.
 */
export function createCaptureService(deps: {
  store: ConsentStore;
  /** Activates the connection: credentials, superseding, audit and events (lifecycle.ts). */
  connections: Pick<ConnectionsService, 'activate' | 'describe' | 'markFailed'>;
  providers: Pick<ProvidersService, 'loadForUse'>;
  stateKey: SecretBytes;
  returnUrls: Parameters<typeof returnUrlAllowed>[1];
  /** The SSRF-guarded client that probes credentials when a provider asks for it. */
  probe: SafeFetch;
  /** Counts captures by outcome (the original's `oauth_credential_captures_total`). */
  metrics?: { captured(outcome: 'success' | 'error'): void };
  /** The step before activation of a consent the app must confirm (confirm.service.ts, decision 0017). */
  confirmation?: Pick<ConsentService, 'holdForConfirmation' | 'verifierOrigin'>;
  now?: () => number;
}) {
  const { store, connections } = deps;
  const now = deps.now ?? Date.now;

  async function openFlow(stateText: string) {
    const checked = verifyState(deps.stateKey, stateText);
    if (!checked.ok)
      throw errorFrom(consentErrors, 'capture_not_available', { detail: `state ${checked.reason}` });
    const flow = await store.findOpen(checked.state.flowId, now());
    if (flow === undefined || flow.verifier !== null) throw errorFrom(consentErrors, 'capture_not_available');
    // The probe goes to this connection's URLs: the provider's placeholders filled (decision 0015).
    const { profile } = await loadForFlow(deps, flow);
    const id = flow.provider_id;
    if (profile.auth_type === 'oauth2') throw errorFrom(consentErrors, 'capture_not_available');
    return {
      flow,
      profile,
      provider: { id, name: profile.name, description: profile.description ?? '' },
      fields: captureFields(profile),
    };
  }

  /** Probes per capture link (per process): a link is not a free oracle for guessing keys. */
  const probes = new Map<string, number>();
  const MAX_PROBES = 10;

  /**
   * Tries the credentials against the provider as its `params.validation` says (or, without one,
   * at `user_info_endpoint` under `api_base_url`, as the original did), applying them with the
   * provider's strategy, through the egress guard. Only the outcome is kept: no answer body, no
   * credential, no cache.
   */
  async function verify(
    flowId: string,
    profile: StoredProfile,
    values: Record<string, string>,
  ): Promise<number | undefined> {
    const spec = probeSpecFor(profile);
    if (spec === undefined) return undefined;
    const used = probes.get(flowId) ?? 0;
    if (used >= MAX_PROBES)
      throw commonError('rate_limited', {
        message: 'Too many attempts with this link. Start the connection again from the application.',
      });
    if (probes.size > 10_000) probes.clear();
    probes.set(flowId, used + 1);
    let request: OutgoingRequest;
    try {
      request = applyStrategy(strategyFor(profile), values, {
        url: new URL(spec.url),
        headers: spec.method === 'POST' ? { 'content-type': 'application/json' } : {},
        body: spec.method === 'POST' ? '{}' : '',
      });
    } catch (error) {
      if (!(error instanceof StrategyNotApplicable)) throw error;
      // e.g. an optional field of a custom credential_schema that the strategy needs was left empty.
      throw errorFrom(consentErrors, 'invalid_credentials', {
        details: [{ path: 'credentials', message: error.message }],
      });
    }
    let status: number;
    let body: Buffer;
    try {
      const answer = await deps.probe(request.url.href, {
        method: spec.method,
        headers: { accept: 'application/json', ...request.headers },
        ...(spec.method === 'POST' ? { body: '{}' } : {}),
      });
      status = answer.status;
      body = answer.body;
    } catch (error) {
      if (!(error instanceof EgressError)) throw error;
      throw errorFrom(consentErrors, 'credentials_unverifiable', { detail: `probe: ${error.message}` });
    }
    const refuse = (why: string) =>
      errorFrom(consentErrors, 'credentials_rejected', {
        detail: `probe answered ${status}${why}`,
        // The original's implicit probe: say where the provider refused them.
        ...(spec.implicit
          ? {
              message: `The provider refused these credentials (its user info endpoint answered ${status}). Check them and submit again; nothing was stored.`,
            }
          : {}),
      });
    if (spec.failureStatus.includes(status) && !spec.expectStatus.includes(status)) throw refuse('');
    const accepted =
      spec.expectStatus.length > 0 ? spec.expectStatus.includes(status) : status >= 200 && status < 300;
    if (accepted) {
      // Only whether the text is there is kept; the answer itself is not (nor logged).
      const text = spec.failureBodyContains || spec.successBodyContains ? body.toString('utf8') : '';
      if (spec.failureBodyContains && text.includes(spec.failureBodyContains))
        throw refuse(' with failure_body_contains');
      if (spec.successBodyContains && !text.includes(spec.successBodyContains))
        throw refuse(' without success_body_contains');
      return status;
    }
    if (spec.expectStatus.length > 0 && status < 500 && status !== 429) throw refuse('');
    throw errorFrom(consentErrors, 'credentials_unverifiable', { detail: `probe answered ${status}` });
  }

  /** Stores the credentials, activates the connection, and says where to send the user. */
  async function captureOnce(ctx: AuditContext, stateText: string, values: Record<string, unknown>) {
    const { flow, profile, provider, fields } = await openFlow(stateText);
    const checked = checkCaptured(fields, values);
    if (!checked.ok) throw errorFrom(consentErrors, 'invalid_credentials', { details: checked.problems });
    // Before the flow is consumed: refused credentials leave the link usable for another try.
    const probed = await verify(flow.id, profile, checked.values);
    if ((await store.consume(flow.id, now())) === undefined)
      throw errorFrom(consentErrors, 'capture_not_available');
    // Field names only: the values are the secrets.
    const details = {
      provider: provider.name,
      fields: Object.keys(checked.values),
      ...(probed === undefined ? {} : { probe_status: probed }),
    };
    // A consent the app must confirm is held, and the browser goes to its verifier page first.
    const verifierAt = await deps.confirmation?.holdForConfirmation(
      flow.id,
      { kind: 'static', fields: checked.values },
      details,
    );
    if (verifierAt === VERIFIER_GONE) {
      await connections.markFailed(flow.connection_id, VERIFIER_GONE, { ctx });
      throw errorFrom(consentErrors, 'verifier_not_configured');
    }
    if (verifierAt !== undefined)
      return { connection_id: flow.connection_id, status: 'pending' as const, redirect_url: verifierAt };
    // After the flow is consumed (one writer per connection). A backend failure answers its 503;
    // the connection stays pending until it expires, and the user starts again.
    const { activated } = await connections.activate(
      ctx,
      flow.connection_id,
      { kind: 'static', fields: checked.values },
      details,
    );
    if (!activated) throw errorFrom(consentErrors, 'capture_not_available');
    const redirectUrl = returnUrlAllowed(flow.return_url, deps.returnUrls)
      ? withOutcome(flow.return_url, {
          status: 'success',
          connection_id: flow.connection_id,
          provider: provider.name,
        })
      : null;
    return { connection_id: flow.connection_id, status: 'active' as const, redirect_url: redirectUrl };
  }

  return {
    async form(stateText: string): Promise<CaptureForm> {
      const { flow, profile, provider, fields } = await openFlow(stateText);
      const trusted = returnUrlAllowed(flow.return_url, deps.returnUrls);
      const returnOrigin = trusted ? new URL(flow.return_url).origin : null;
      const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
      return {
        help: text(profile.params.capture_help),
        docs_url: text(profile.params.docs_url),
        provider,
        fields,
        schema: credentialSchema(profile),
        expires_at: new Date(flow.expires_at).toISOString(),
        return_origin: returnOrigin,
        verifier_origin: deps.confirmation?.verifierOrigin ?? null,
      };
    },

    /**
     * The form's cancel: the link is used up and the pending connection fails (`cancelled`), so
     * nothing can be connected through it any more; answers where to send the user back (the
     * return URL with `status=failed&error=cancelled`), or null when that URL is no longer allowed.
     */
    async cancel(ctx: AuditContext, stateText: string): Promise<string | null> {
      const { flow } = await openFlow(stateText);
      if ((await store.consume(flow.id, now())) === undefined)
        throw errorFrom(consentErrors, 'capture_not_available');
      await connections.markFailed(flow.connection_id, 'cancelled', { ctx });
      return returnUrlAllowed(flow.return_url, deps.returnUrls)
        ? withOutcome(flow.return_url, { status: 'failed', error: 'cancelled' })
        : null;
    },

    /** `captureOnce`, counted by outcome. */
    async capture(ctx: AuditContext, stateText: string, values: Record<string, unknown>) {
      try {
        const result = await captureOnce(ctx, stateText, values);
        deps.metrics?.captured('success');
        return result;
      } catch (error) {
        deps.metrics?.captured('error');
        throw error;
      }
    },
  };
}

export type CaptureService = ReturnType<typeof createCaptureService>;
