/**
 * The bridge: a `fetch` that applies a connection's credential to every request. It caches the
 * credential until `expires_at - skew`, refreshes once however many requests are waiting, retries
 * exactly once after an upstream 401 with a forced refresh, and backs off while the broker is
 * unreachable (the client's retry policy, widened by `brokerRetry`). Redirects are followed only
 * within the origin of the original request; a redirect elsewhere is returned unfollowed, so the
 * credential never reaches another origin.
 */
import type { NexusClient } from './client.ts';
import type { RetryOptions } from './config.ts';
import {
  AttentionRequiredError,
  BrokerUnavailableError,
  ConflictError,
  NotFoundError,
  ServerError,
} from './errors.ts';
import type { CallOptions } from './http.ts';
import { applyStrategy, type OutgoingRequest } from './strategies.ts';
import type { TokenResponse } from './types.ts';

export type BridgeTarget =
  | { client: NexusClient; connectionId: string }
  | { client: NexusClient; workspaceId: string; providerName: string };

export interface BridgeOptions {
  /** Refresh this long before `expires_at`. Default 60 s. */
  skewMs?: number;
  /** Clock in ms since the epoch. Default: the client's (`Date.now`). */
  now?: () => number;
  /** The fetch that reaches the upstream API. Default: the global fetch. */
  fetch?: FetchLike;
  /**
   * Retry policy for the bridge's broker calls while the broker is unreachable.
   * Default `{ maxRetries: 6, baseDelayMs: 250, maxDelayMs: 5000 }`.
   */
  brokerRetry?: RetryOptions;
  /** Per-attempt timeout of the bridge's broker calls (default: the client's). */
  brokerTimeoutMs?: number;
}

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** A `fetch`-compatible function, plus access to the cached credential. */
export interface BridgeFetch extends FetchLike {
  /** The credential the next request would use (fetched or refreshed when needed). */
  credential(): Promise<TokenResponse>;
  /** Forces a refresh now (single-flight with any refresh already running). */
  refresh(): Promise<TokenResponse>;
  /** Drops the cached credential. */
  invalidate(): void;
  /** The connection in use (known after the first credential for workspace + provider targets). */
  readonly connectionId: string | undefined;
}

export const DEFAULT_SKEW_MS = 60_000;
/** Redirects the bridge follows (within the original origin) before failing, as fetch does. */
export const MAX_REDIRECTS = 20;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Headers that describe a body, dropped when a redirect turns the request into a GET. */
const BODY_HEADERS = [
  'content-type',
  'content-length',
  'content-encoding',
  'content-language',
  'content-location',
];

/** The request for the next hop of a same-origin redirect (fetch's rules for the method and body). */
function redirectedRequest(request: OutgoingRequest, status: number, url: URL): OutgoingRequest {
  const toGet =
    (status === 303 && request.method !== 'GET' && request.method !== 'HEAD') ||
    ((status === 301 || status === 302) && request.method === 'POST');
  if (!toGet) return { ...request, url };
  const headers = { ...request.headers };
  for (const name of BODY_HEADERS) delete headers[name];
  return { url, method: 'GET', headers, body: undefined };
}

/** A response reached through redirects the bridge followed says so, as fetch's would. */
function markRedirected(response: Response, hops: number): Response {
  if (hops > 0 && !response.redirected) Object.defineProperty(response, 'redirected', { value: true });
  return response;
}
export const DEFAULT_BROKER_RETRY: Required<RetryOptions> = {
  maxRetries: 6,
  baseDelayMs: 250,
  maxDelayMs: 5000,
};

interface Cached {
  token: TokenResponse;
  /** ms since the epoch; Infinity when the broker gave no expiry. */
  expiresAt: number;
  /** ms since the epoch after which the credential is refreshed before use. */
  refreshAt: number;
}

class CredentialCache {
  readonly #client: NexusClient;
  readonly #target: BridgeTarget;
  readonly #now: () => number;
  readonly #skewMs: number;
  readonly #call: CallOptions;
  #connectionId: string | undefined;
  #cached: Cached | undefined;
  #inflight: Promise<Cached> | undefined;

  constructor(target: BridgeTarget, options: BridgeOptions) {
    this.#client = target.client;
    this.#target = target;
    this.#now = options.now ?? target.client.now;
    this.#skewMs = options.skewMs ?? DEFAULT_SKEW_MS;
    this.#connectionId = 'connectionId' in target ? target.connectionId : undefined;
    this.#call = {
      retry: { ...DEFAULT_BROKER_RETRY, ...options.brokerRetry },
      ...(options.brokerTimeoutMs ? { timeoutMs: options.brokerTimeoutMs } : {}),
    };
  }

  get connectionId(): string | undefined {
    return this.#connectionId;
  }

  get now(): () => number {
    return this.#now;
  }

  /** A credential valid now: the cached one, else one fetch (or refresh) shared by all callers. */
  async get(): Promise<TokenResponse> {
    const cached = this.#cached;
    if (cached && this.#now() < cached.refreshAt) return cached.token;
    // Expiring (or never fetched): one broker call however many requests wait for it.
    try {
      return (await this.#singleFlight(cached === undefined ? 'fetch' : 'refresh')).token;
    } catch (error) {
      // Refreshing ahead failed for a passing reason: the old credential is still good until it expires.
      const transient = error instanceof BrokerUnavailableError || error instanceof ServerError;
      if (transient && cached && this.#cached === cached && this.#now() < cached.expiresAt)
        return cached.token;
      throw error;
    }
  }

  /** After an upstream 401 with `stale`: refresh unless another caller already replaced it. */
  async forceRefresh(stale: TokenResponse | undefined): Promise<TokenResponse> {
    const cached = this.#cached;
    if (cached && stale && cached.token !== stale && this.#now() < cached.refreshAt) return cached.token;
    return (await this.#singleFlight('refresh')).token;
  }

  invalidate(): void {
    this.#cached = undefined;
  }

  /** The shared broker call is not tied to one caller's abort signal: other waiters may want it. */
  #singleFlight(kind: 'fetch' | 'refresh'): Promise<Cached> {
    if (this.#inflight) return this.#inflight;
    this.#inflight = this.#load(kind)
      .then((token) => {
        const expiresAt = token.expires_at === null ? Number.POSITIVE_INFINITY : Date.parse(token.expires_at);
        const cached = { token, expiresAt, refreshAt: expiresAt - this.#skewMs };
        this.#cached = cached;
        this.#connectionId = token.connection_id;
        return cached;
      })
      .catch((error: unknown) => {
        if (error instanceof AttentionRequiredError) this.#cached = undefined;
        // For workspace + provider, the user may reconnect (a new connection): resolve again next time.
        if (
          !('connectionId' in this.#target) &&
          (error instanceof ConflictError || error instanceof NotFoundError)
        ) {
          this.#cached = undefined;
          this.#connectionId = undefined;
        }
        throw error;
      })
      .finally(() => {
        this.#inflight = undefined;
      });
    return this.#inflight;
  }

  async #load(kind: 'fetch' | 'refresh'): Promise<TokenResponse> {
    const id = this.#connectionId;
    if (id === undefined) {
      const t = this.#target as { workspaceId: string; providerName: string };
      return this.#client.resolveToken(t.workspaceId, t.providerName, this.#call);
    }
    if (kind === 'fetch') return this.#client.getToken(id, this.#call);
    try {
      return await this.#client.refreshConnection(id, this.#call);
    } catch (error) {
      // Static credentials (and OAuth grants without a refresh token) cannot be refreshed: read
      // the stored credential again instead, it may have been replaced.
      if (error instanceof ConflictError && !(error instanceof AttentionRequiredError))
        if (error.code === 'refresh_not_supported') return this.#client.getToken(id, this.#call);
      throw error;
    }
  }
}

/**
 * Returns a `fetch` that sends each request with the credential of the connection applied
 * (oauth2, header, headers, query_param, basic_auth, hmac_payload, aws_sigv4). The request body is read
 * into memory once so that it can be signed over its exact bytes and replayed after a 401.
 * Throws AttentionRequiredError when the user must reconnect.
 */
export function createBridgeFetch(target: BridgeTarget, options: BridgeOptions = {}): BridgeFetch {
  const cache = new CredentialCache(target, options);
  const upstream: FetchLike = options.fetch ?? ((input, init) => globalThis.fetch(input, init));

  const apply = async (
    prepared: OutgoingRequest,
    token: TokenResponse,
    base: Request,
    init: RequestInit | undefined,
  ) => {
    const applied = await applyStrategy(token.strategy, token.credentials, prepared, { now: cache.now });
    return upstream(applied.url, {
      ...init,
      method: applied.method,
      headers: applied.headers,
      body: applied.body === undefined ? null : (applied.body as Uint8Array<ArrayBuffer>),
      signal: base.signal,
      // Never let the fetch follow a redirect itself: it would carry the credential to any origin.
      redirect: 'manual',
    });
  };

  /**
   * Sends with the credential and follows redirects only within the origin of the original request,
   * applying the credential again at each hop (fetch's method rules: 303, and 301/302 after a POST,
   * become a GET without a body). A redirect to another origin is returned as it came, unfollowed.
   */
  const send = async (
    prepared: OutgoingRequest,
    token: TokenResponse,
    base: Request,
    init: RequestInit | undefined,
  ): Promise<Response> => {
    const origin = prepared.url.origin;
    let current = prepared;
    for (let hops = 0; ; hops++) {
      const response = await apply(current, token, base, init);
      if (base.redirect === 'manual' || !REDIRECT_STATUSES.has(response.status))
        return markRedirected(response, hops);
      const location = response.headers.get('location');
      if (location === null) return markRedirected(response, hops);
      let next: URL;
      try {
        next = new URL(location, current.url);
      } catch {
        return markRedirected(response, hops);
      }
      if (base.redirect === 'error') {
        await response.body?.cancel().catch(() => undefined);
        throw new TypeError('fetch failed', { cause: new Error('unexpected redirect') });
      }
      if (next.origin !== origin) return markRedirected(response, hops);
      if (hops >= MAX_REDIRECTS) {
        await response.body?.cancel().catch(() => undefined);
        throw new TypeError('fetch failed', { cause: new Error('redirect count exceeded') });
      }
      await response.body?.cancel().catch(() => undefined);
      current = redirectedRequest(current, response.status, next);
    }
  };

  const bridge = (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const base = new Request(input, init);
    const bytes = base.body === null ? undefined : new Uint8Array(await base.arrayBuffer());
    const headers: Record<string, string> = {};
    base.headers.forEach((value, name) => {
      headers[name] = value;
    });
    const prepared: OutgoingRequest = { url: new URL(base.url), method: base.method, headers, body: bytes };
    const passInit = init === undefined ? undefined : { ...init };
    if (passInit) {
      // Everything about the request is already in `prepared`; keep only transport extras (dispatcher, …).
      delete passInit.body;
      delete passInit.headers;
    }

    const token = await cache.get();
    const first = await send(prepared, token, base, passInit);
    if (first.status !== 401) return first;
    // The upstream refused the credential: one forced refresh, one retry, whatever happens next.
    await first.body?.cancel().catch(() => undefined);
    const fresh = await cache.forceRefresh(token);
    return send(prepared, fresh, base, passInit);
  }) as BridgeFetch;

  Object.defineProperties(bridge, {
    credential: { value: () => cache.get() },
    refresh: { value: () => cache.forceRefresh(undefined) },
    invalidate: { value: () => cache.invalidate() },
    connectionId: { get: () => cache.connectionId },
  });
  return bridge;
}
