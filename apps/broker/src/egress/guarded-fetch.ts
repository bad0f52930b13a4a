import http from 'node:http';
import https from 'node:https';
import { createAddressGuard, EgressError, type Resolver } from './address-guard.ts';
import { type PinnedAnswer, sendPinned } from './pinned-request.ts';

export interface GuardedFetchOptions {
  /** Ranges allowed despite being special: `NEXUS_EGRESS_ALLOWED_CIDRS`, and what the caller adds. */
  readonly allowCidrs: readonly string[];
  /** The largest answer read; a longer one fails the request (a cut token answer is no answer). */
  readonly maxResponseBytes: number;
  /** Deadline of a request whose caller passes no signal (a caller's own signal is never shortened). */
  readonly timeoutMs: number;
  /** Hops followed for `redirect: 'follow'`, each checked like the first; default 3. */
  readonly maxRedirects?: number;
  /**
   * Keep connections open for reuse. Each pooled socket was opened to an address the guard checked
   * for that very host. Off by default: a token request on a socket the server is closing fails
   * after it may have been sent, which the refresh must count as an unknown outcome.
   */
  readonly keepAlive?: boolean;
  /** When set, only URLs of this origin are fetched (a secret backend's configured address). */
  readonly origin?: string;
  /** Resolver, replaceable in tests. */
  readonly resolve?: Resolver;
}

export type GuardedFetch = typeof fetch & {
  /** Closes the pooled connections (keepAlive). */
  close(): void;
};

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const NULL_BODY = new Set([101, 103, 204, 205, 304]);
/** The only caller headers that follow a redirect to another origin (any other may be a credential). */
const PORTABLE_HEADERS = new Set(['accept', 'accept-language', 'content-type', 'user-agent']);

/** Fails like undici's fetch: a TypeError whose `cause` says why (with a socket-style `code`). */
function fetchFailed(cause: unknown): TypeError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new TypeError(`fetch failed: ${reason}`, { cause });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

function toResponse(answer: PinnedAnswer, url: URL): Response {
  const headers = new Headers();
  for (let i = 0; i + 1 < answer.rawHeaders.length; i += 2)
    headers.append(answer.rawHeaders[i]!, answer.rawHeaders[i + 1]!);
  const response = new Response(NULL_BODY.has(answer.status) ? null : new Uint8Array(answer.body), {
    status: answer.status,
    statusText: answer.statusText,
    headers,
  });
  Object.defineProperty(response, 'url', { value: url.href });
  return response;
}

/**
 * The egress guard behind the WHATWG `fetch` interface, for the libraries that take a fetch
 * (oauth4webapi's `customFetch`, jose's remote key sets) and for the Vault client. Every request,
 * and every redirect hop it follows, is resolved, checked and connected to the checked address.
 * Failures look like `fetch`'s own: the signal's reason when aborted, otherwise a `TypeError` whose
 * `cause` is an `EgressError` (or the socket's error) carrying a `code`.
 *
 * `redirect: 'manual'` (what oauth4webapi and jose ask for) returns the 3xx as it came;
 * `'error'` fails on it; `'follow'` follows up to `maxRedirects` hops, each checked, keeping only
 * content-neutral headers on a change of origin.
 */
export function createGuardedFetch(options: GuardedFetchOptions): GuardedFetch {
  const guard = createAddressGuard(options);
  const maxRedirects = options.maxRedirects ?? 3;
  const only = options.origin === undefined ? undefined : new URL(options.origin).origin;
  const agents = options.keepAlive
    ? {
        'http:': new http.Agent({ keepAlive: true, maxSockets: 64 }),
        'https:': new https.Agent({ keepAlive: true, maxSockets: 64 }),
      }
    : undefined;

  async function guardedFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    let request: Request;
    try {
      request = new Request(input, init);
    } catch (error) {
      // Not a URL, or one with credentials in it: nothing was sent.
      throw fetchFailed(new EgressError('bad_url', 'not a URL this client fetches', { cause: error }));
    }
    // A caller's own signal is its deadline (the refresh extends its timeout after a stall).
    const signal = init?.signal ?? AbortSignal.any([request.signal, AbortSignal.timeout(options.timeoutMs)]);
    let url = new URL(request.url);
    let method = request.method;
    let headers: Record<string, string> = Object.fromEntries(request.headers);
    let body = request.body === null ? undefined : Buffer.from(await request.arrayBuffer());
    for (let hop = 0; ; hop++) {
      if (url.protocol !== 'https:' && url.protocol !== 'http:')
        throw fetchFailed(new EgressError('bad_url', `${url.protocol} URLs are not fetched`));
      if (only !== undefined && url.origin !== only)
        throw fetchFailed(new EgressError('bad_url', `only ${only} is fetched by this client`));
      if (signal.aborted) throw abortReason(signal);
      let answer: PinnedAnswer;
      try {
        const target = await guard(url);
        if (signal.aborted) throw abortReason(signal);
        answer = await sendPinned(url, target, {
          method,
          headers,
          body,
          signal,
          agent: agents?.[url.protocol as 'http:' | 'https:'],
          maxResponseBytes: options.maxResponseBytes,
          overflow: 'fail',
        });
      } catch (error) {
        if (signal.aborted) throw abortReason(signal);
        throw fetchFailed(error);
      }
      const location = answer.headers.location;
      if (!REDIRECTS.has(answer.status) || location === undefined || request.redirect === 'manual') {
        try {
          return toResponse(answer, url);
        } catch (error) {
          throw fetchFailed(error); // a status the Response constructor refuses
        }
      }
      if (request.redirect === 'error')
        throw fetchFailed(new EgressError('too_many_redirects', `${url.host} answered with a redirect`));
      if (hop >= maxRedirects)
        throw fetchFailed(new EgressError('too_many_redirects', `more than ${maxRedirects} redirects`));
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw fetchFailed(new EgressError('bad_url', 'the redirect target is not a URL'));
      }
      // Fetch §4.4: 303, and 301/302 after a POST, become a GET without a body.
      if (answer.status === 303 || (method === 'POST' && answer.status < 303)) {
        method = 'GET';
        body = undefined;
        headers = Object.fromEntries(Object.entries(headers).filter(([name]) => !/^content-/i.test(name)));
      }
      if (next.origin !== url.origin)
        headers = Object.fromEntries(
          Object.entries(headers).filter(([name]) => PORTABLE_HEADERS.has(name.toLowerCase())),
        );
      url = next;
    }
  }

  return Object.assign(guardedFetch as typeof fetch, {
    close() {
      agents?.['http:'].destroy();
      agents?.['https:'].destroy();
    },
  });
}
