import * as oauth from 'oauth4webapi';
import { EgressError } from '../../egress/address-guard.ts';
import { type EndpointRules, endpointProblem } from '../../egress/endpoint-rules.ts';
import { errorFrom, NexusError } from '../../errors/nexus-error.ts';
import { checkUrl, type Problem } from './provider-url-rules.ts';
import { providerErrors } from './providers.errors.ts';

export interface DiscoveredMetadata {
  readonly issuer: string;
  readonly authorization_endpoint: string;
  readonly token_endpoint: string;
  readonly jwks_uri?: string | undefined;
  readonly userinfo_endpoint?: string | undefined;
  readonly revocation_endpoint?: string | undefined;
  readonly raw: oauth.AuthorizationServer;
}

interface Entry {
  readonly expiresAt: number;
  readonly value?: DiscoveredMetadata;
  readonly error?: Error;
}

const TIMEOUT_MS = 10_000;
/** A failure is remembered briefly only, so one bad minute upstream does not stick. */
const FAILURE_TTL_MS = 15_000;

/**
 * The endpoints of a document the broker calls. The document comes from the identity provider,
 * not from the operator, and is read again after every TTL: each is held to the rules of a URL the
 * operator typed (egress/endpoint-rules.ts), and the egress guard checks it again when called.
 */
const CALLED_ENDPOINTS = ['token_endpoint', 'jwks_uri', 'revocation_endpoint', 'userinfo_endpoint'] as const;

/** The first endpoint of `as` that the rules refuse, as "field: problem". */
function refusedEndpoint(as: oauth.AuthorizationServer, rules: EndpointRules): string | undefined {
  for (const field of CALLED_ENDPOINTS) {
    const value = as[field];
    if (value === undefined) continue;
    let url: URL;
    try {
      url = new URL(String(value));
    } catch {
      return `${field}: must be an absolute URL`;
    }
    const problem = endpointProblem(url, rules);
    if (problem !== undefined) return `${field}: ${problem}`;
  }
  // The authorization endpoint is opened by the user's browser, never called by the broker: it is
  // held to the rules of an `auth_url` the operator typed, not to the address rules of a called one.
  const problems: Problem[] = [];
  checkUrl(
    problems,
    'authorization_endpoint',
    String(as.authorization_endpoint),
    { allowLoopbackHttp: rules.allowLoopback, hasClientSecret: false },
    false,
  );
  return problems[0] === undefined ? undefined : `${problems[0].path}: ${problems[0].message}`;
}

/** Egress failures after which the same request may work later; the others are the guard's refusals. */
const TRANSIENT_EGRESS = new Set(['dns_failed', 'timeout', 'network']);

/**
 * Whether a failed discovery may work on a later try (the host unreachable or slow, a 5xx or 429
 * answer) rather than having said there is no usable document there: another status, a body that
 * is not a discovery document or names another issuer, endpoints the rules refuse, an address the
 * egress guard refuses. Unknown failures count as transient: a caller then waits instead of
 * concluding there is nothing to find.
 */
export function discoveryMayRecover(error: unknown): boolean {
  if (!(error instanceof NexusError) || error.code !== 'discovery_failed') return true;
  const cause = error.cause;
  if (cause === undefined) return false; // refused after reading: no endpoints, refused endpoints
  if (cause instanceof oauth.OperationProcessingError) {
    const answer = cause.cause;
    if (cause.code === oauth.RESPONSE_IS_NOT_CONFORM && answer instanceof Response)
      return answer.status >= 500 || answer.status === 429;
    return false;
  }
  if (cause instanceof TypeError) {
    // oauth4webapi's own coded TypeErrors (a plain-http URL it may not fetch) are refusals too.
    if (typeof (cause as { code?: unknown }).code === 'string') return false;
    if (cause.cause instanceof EgressError) return TRANSIENT_EGRESS.has(cause.cause.reason);
  }
  return true;
}

/** What discovery reports to metrics: each document fetched (not cached answers), by outcome. */
export interface DiscoveryMetrics {
  discovered(outcome: 'success' | 'error', seconds: number): void;
}

/**
 * Fetches and validates OpenID discovery documents (OIDC Discovery 1.0 §4) with oauth4webapi,
 * which checks that the document's `issuer` equals the one asked for (§4.3). Successful results
 * are cached for the configured TTL. The document is fetched through the egress guard (`fetch`),
 * and the endpoints it names must pass `rules`, or the whole document is refused.
 */
export function createDiscovery(deps: {
  ttlSeconds: number;
  allowInsecure: (url: URL) => boolean;
  /** The egress guard for identity-provider endpoints (egress/guarded-fetch.ts). */
  fetch: typeof fetch;
  /** What an endpoint the document names may be (egress/endpoint-rules.ts). */
  rules: EndpointRules;
  metrics?: DiscoveryMetrics;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;
  const cache = new Map<string, Entry>();
  const inflight = new Map<string, Promise<DiscoveredMetadata>>();

  async function fetchMetadata(issuer: string): Promise<DiscoveredMetadata> {
    const url = new URL(issuer);
    let as: oauth.AuthorizationServer;
    try {
      const response = await oauth.discoveryRequest(url, {
        algorithm: 'oidc',
        signal: AbortSignal.timeout(TIMEOUT_MS),
        [oauth.allowInsecureRequests]: deps.allowInsecure(url),
        [oauth.customFetch]: deps.fetch,
      });
      as = await oauth.processDiscoveryResponse(url, response);
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message.slice(0, 200) : 'unknown error';
      throw errorFrom(providerErrors, 'discovery_failed', {
        message: `OpenID discovery for ${issuer} failed: ${reason}`,
        detail: reason,
        cause,
      });
    }
    if (typeof as.authorization_endpoint !== 'string' || typeof as.token_endpoint !== 'string') {
      throw errorFrom(providerErrors, 'discovery_failed', {
        message: `The discovery document of ${issuer} has no authorization_endpoint or token_endpoint.`,
      });
    }
    const refused = refusedEndpoint(as, deps.rules);
    if (refused !== undefined) {
      throw errorFrom(providerErrors, 'discovery_failed', {
        message: `The discovery document of ${issuer} is refused: ${refused}.`,
        detail: refused,
      });
    }
    return {
      issuer: as.issuer,
      authorization_endpoint: as.authorization_endpoint,
      token_endpoint: as.token_endpoint,
      jwks_uri: as.jwks_uri,
      userinfo_endpoint: as.userinfo_endpoint,
      revocation_endpoint: as.revocation_endpoint,
      raw: as,
    };
  }

  function load(issuer: string): Promise<DiscoveredMetadata> {
    const running = inflight.get(issuer);
    if (running) return running;
    const started = performance.now();
    const took = () => (performance.now() - started) / 1000;
    const promise = fetchMetadata(issuer)
      .then((value) => {
        cache.set(issuer, { value, expiresAt: now() + deps.ttlSeconds * 1000 });
        deps.metrics?.discovered('success', took());
        return value;
      })
      .catch((error: Error) => {
        cache.set(issuer, { error, expiresAt: now() + FAILURE_TTL_MS });
        deps.metrics?.discovered('error', took());
        throw error;
      })
      .finally(() => inflight.delete(issuer));
    inflight.set(issuer, promise);
    return promise;
  }

  return {
    /** Fetches now, ignoring the cache (registration and updates must see the live document). */
    refresh: load,
    /** Cached metadata, fetched on a miss or after the TTL. */
    async get(issuer: string): Promise<DiscoveredMetadata> {
      const entry = cache.get(issuer);
      if (entry && entry.expiresAt > now()) {
        if (entry.value) return entry.value;
        throw entry.error;
      }
      return load(issuer);
    },
  };
}

export type Discovery = ReturnType<typeof createDiscovery>;
