import { createAddressGuard, EgressError, type PinnedAddress, type Resolver } from './address-guard.ts';
import { sendPinned } from './pinned-request.ts';

// The address check lives in address-guard.ts; these names are imported from here too.
export {
  createAddressGuard,
  EgressError,
  type EgressFailure,
  isSpecialAddress,
  type PinnedAddress,
  pinnedLookup,
} from './address-guard.ts';

/**
 * An outbound HTTP client for URLs that are not fully trusted (a probe of credentials a user just
 * typed, webhook targets, the remote verification callback): it refuses private, loopback,
 * link-local and other special addresses after DNS resolution and again on every redirect, unless
 * the operator allows the address; it connects to the very address it checked (no second lookup to
 * rebind); it never pools or caches; it bounds time, redirects and the size of what it reads. It
 * answers a small record (status, headers, bounded body); `guarded-fetch.ts` is the same guard
 * behind the WHATWG `fetch` interface, for libraries.
 */

export interface SafeRequest {
  readonly method?: 'GET' | 'HEAD' | 'POST';
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

export interface SafeResponse {
  readonly status: number;
  /** The URL that answered, after redirects. */
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** At most `maxResponseBytes`; longer bodies are cut (and `truncated` says so). */
  readonly body: Buffer;
  readonly truncated: boolean;
}

export interface SafeFetchOptions {
  /** CIDR ranges the operator allows despite being special (e.g. `127.0.0.1/32` for a local API). */
  readonly allowCidrs: readonly string[];
  readonly timeoutMs: number;
  readonly maxRedirects?: number;
  readonly maxResponseBytes?: number;
  /** Resolver, replaceable in tests; the default is the system resolver (`getaddrinfo`). */
  readonly resolve?: Resolver;
}

export type SafeFetch = (url: string, request?: SafeRequest) => Promise<SafeResponse>;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export function createSafeFetch(options: SafeFetchOptions): SafeFetch {
  const maxRedirects = options.maxRedirects ?? 3;
  const maxBytes = options.maxResponseBytes ?? 64 * 1024;
  const addressFor = createAddressGuard(options);

  async function once(url: URL, target: PinnedAddress, request: SafeRequest, signal: AbortSignal) {
    const answer = await sendPinned(url, target, {
      method: request.method ?? 'GET',
      headers: request.headers ?? {},
      body: request.body === undefined ? undefined : Buffer.from(request.body),
      signal,
      agent: undefined,
      maxResponseBytes: maxBytes,
      overflow: 'truncate',
    });
    return {
      status: answer.status,
      url: url.href,
      headers: answer.headers,
      body: answer.body,
      truncated: answer.truncated,
      location: answer.headers.location,
    };
  }

  return async (href, request = {}) => {
    let url: URL;
    try {
      url = new URL(href);
    } catch {
      throw new EgressError('bad_url', 'not an absolute URL');
    }
    const signal = AbortSignal.timeout(options.timeoutMs);
    let current = request;
    for (let hop = 0; ; hop++) {
      if (url.protocol !== 'https:' && url.protocol !== 'http:')
        throw new EgressError('bad_url', `${url.protocol} URLs are not fetched`);
      if (url.username !== '' || url.password !== '')
        throw new EgressError('bad_url', 'URLs with embedded credentials are not fetched');
      let response: Awaited<ReturnType<typeof once>>;
      try {
        const target = await addressFor(url);
        if (signal.aborted) throw signal.reason;
        response = await once(url, target, current, signal);
      } catch (error) {
        if (error instanceof EgressError) throw error;
        if (signal.aborted) throw new EgressError('timeout', `no answer from ${url.host} in time`);
        throw new EgressError('network', `${url.host} could not be reached`, { cause: error });
      }
      const { location, ...rest } = response;
      if (!REDIRECTS.has(response.status) || location === undefined) return rest;
      if (hop >= maxRedirects)
        throw new EgressError('too_many_redirects', `more than ${maxRedirects} redirects`);
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw new EgressError('bad_url', 'the redirect target is not a URL');
      }
      // Like browsers: 303, and 301/302 after a POST, become GET without a body; credentials the
      // caller attached never follow the request to another origin.
      const toGet = response.status === 303 || (current.method === 'POST' && response.status < 303);
      current = {
        ...(toGet ? { method: 'GET' as const } : { method: current.method ?? 'GET', body: current.body }),
        headers: next.origin === url.origin ? current.headers : {},
      };
      url = next;
    }
  };
}
