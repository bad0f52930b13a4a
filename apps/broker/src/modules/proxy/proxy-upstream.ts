import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import {
  createHostGuard,
  EgressError,
  type GuardOptions,
  guardedLookup,
  literalHost,
} from '../../egress/address-guard.ts';
import { errorFrom, NexusError } from '../../errors/nexus-error.ts';
import { proxyErrors } from './proxy.errors.ts';
import type { LimitedBody } from './proxy-request.ts';

/**
 * The proxy's upstream exchanges: undici's pool, the deadline until an answer's headers, and the
 * release of an answer nobody reads. Whatever holds a pooled connection lets it go in bounded
 * time, so that a route never stops for every caller: 256 answers held by readers that went away
 * would otherwise leave each later call waiting in undici's queue, where none of undici's own
 * timeouts runs.
 */

/** What a failed upstream exchange tells the caller; never the request's own data. */
function upstreamFailure(error: unknown): NexusError {
  if (error instanceof NexusError) return error; // the body's limit, the deadline
  // Which address a name resolved to stays in the log: an agent could otherwise map the
  // broker's internal names through a redirect or a templated host.
  if (error instanceof EgressError)
    return errorFrom(proxyErrors, 'upstream_error', {
      message: "The upstream address is not allowed or not resolvable (the broker's log says which).",
      detail: error.message,
    });
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT')
    return errorFrom(proxyErrors, 'upstream_timeout');
  // A header value the client refuses (a credential with a line break, say): nothing was sent.
  if (code === 'UND_ERR_INVALID_ARG')
    return errorFrom(proxyErrors, 'auth_injection_failed', { detail: (error as Error).message });
  return errorFrom(proxyErrors, 'upstream_error', {
    detail: error instanceof Error ? error.message : String(error),
  });
}

export interface UpstreamOptions extends GuardOptions {
  /** The idle deadline until an answer's headers, and the longest a reader may stop reading. */
  readonly timeoutMs: number;
}

export function createUpstream(options: UpstreamOptions) {
  const check = createHostGuard(options);
  const { timeoutMs } = options;
  // One keep-alive pool per origin. A socket is opened only to an address the guard checked when
  // it was opened (`guardedLookup`); IP literals, which no lookup sees, are checked per request.
  // `bodyTimeout` is off: an answer that has started may stay quiet for long (an event stream,
  // the MCP gateway's server stream). undici's header and connect timeouts back up `send`'s own.
  // undici is loaded on the first proxied call, not at start-up (~12 ms and ~10 MB).
  let pool: Promise<Dispatcher> | undefined;
  const dispatcher = () =>
    // undici is CommonJS: its exports object is the default export, bundled or not.
    (pool ??= import('undici').then(
      ({ default: { Agent } }) =>
        new Agent({
          connections: 256,
          headersTimeout: timeoutMs,
          bodyTimeout: 0,
          connect: { lookup: guardedLookup(check), timeout: timeoutMs },
        }),
      (error: unknown) => {
        pool = undefined; // the next call tries again
        throw error;
      },
    ));

  /**
   * One request to one address-checked URL; resolves when the answer's headers arrive, or fails
   * with `upstream_timeout` after `timeoutMs` without progress. The deadline starts at dispatch:
   * undici's own timeouts start only once the request has a socket, and a request queued behind
   * a full pool would wait for ever. Each chunk of a streamed upload starts it again, so a long
   * upload is not cut while it moves; it ends with the headers, for the rest of the upload too.
   */
  async function send(
    method: string,
    url: URL,
    headers: Record<string, string>,
    body: Buffer | LimitedBody | undefined,
  ): Promise<Dispatcher.ResponseData> {
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw errorFrom(proxyErrors, 'upstream_error', {
        message: `${url.protocol} upstream URLs are not used.`,
      });
    let client: Dispatcher;
    try {
      const literal = literalHost(url);
      if (literal !== undefined) await check(literal);
      client = await dispatcher();
    } catch (error) {
      throw upstreamFailure(error);
    }
    const streamed = body === undefined || Buffer.isBuffer(body) ? undefined : body;
    return new Promise((resolve, reject) => {
      const abort = new AbortController();
      let expired = false;
      const timer = setTimeout(() => {
        expired = true;
        const error = errorFrom(proxyErrors, 'upstream_timeout');
        // Aborts a request on a socket at once; a queued one leaves the queue when its turn comes.
        abort.abort(error);
        streamed?.destroy(error);
        reject(error);
      }, timeoutMs);
      const settled = () => {
        clearTimeout(timer);
        if (streamed !== undefined) streamed.moved = undefined;
      };
      if (streamed !== undefined) streamed.moved = () => timer.refresh();
      client
        .request({
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method: method as Dispatcher.HttpMethod,
          headers,
          body,
          signal: abort.signal,
        })
        .then(
          (res) => {
            settled();
            if (expired) res.body.destroy();
            else resolve(res);
          },
          (error: unknown) => {
            settled();
            reject(upstreamFailure(error));
          },
        );
    });
  }

  return {
    send,
    close() {
      void pool?.then(
        (d) => d.destroy(),
        () => {},
      );
    },
  };
}

/**
 * An answer's body, destroyed once its reader has not taken any of it for `ms`: paused by a pipe
 * whose destination never drains again (an in-process reader that went away without closing, a
 * caller that stopped reading), it would hold its pooled connection for ever. A reader that is
 * slow but reading keeps its answer, and so does one waiting on a quiet upstream (an event stream).
 */
/**
 * Ends an answer still streaming once `allowed` says no: asked every `ms` while the body is open
 * (a connection revoked, an agent deactivated since the call began, on any replica). A check
 * that fails (the database away) leaves the answer going; the next one asks again.
 */
export function endedWhenWithdrawn(body: Readable, allowed: () => Promise<boolean>, ms: number): Readable {
  const timer = setInterval(() => {
    allowed().then(
      (yes) => {
        if (!yes)
          body.destroy(
            errorFrom(proxyErrors, 'upstream_error', {
              detail: 'the connection was revoked or the caller withdrawn while its answer streamed',
            }),
          );
      },
      () => {},
    );
  }, ms);
  timer.unref();
  body.once('close', () => clearInterval(timer));
  return body;
}

export function releasedWhenUnread(body: Readable, ms: number): Readable {
  let paused = false;
  let timer: NodeJS.Timeout | undefined;
  const stalled = () => {
    if (paused)
      body.destroy(
        errorFrom(proxyErrors, 'upstream_timeout', {
          detail: `the answer's reader took nothing for ${ms} ms: its upstream connection is released`,
        }),
      );
  };
  body.on('pause', () => {
    paused = true;
    if (timer === undefined) {
      timer = setTimeout(stalled, ms);
      timer.unref();
    } else timer.refresh(); // rearms it, fired or not
  });
  body.on('resume', () => {
    paused = false;
  });
  body.once('close', () => clearTimeout(timer));
  return body;
}
