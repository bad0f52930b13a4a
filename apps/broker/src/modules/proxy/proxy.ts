import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Dispatcher } from 'undici';
import { commonError } from '../../errors/common.errors.ts';
import { errorFrom, NexusError } from '../../errors/nexus-error.ts';
import { applyStrategy, StrategyNotApplicable } from '../strategies/apply.ts';
import { signSigV4 } from '../strategies/sigv4.ts';
import type { Strategy } from '../strategies/strategy.ts';
import { proxyErrors } from './proxy.errors.ts';
import {
  buffer,
  connectionRefOf,
  forwardedHeaders,
  header,
  insideBase,
  type LimitedBody,
  limited,
  REPLAY_BUFFER_BYTES,
  responseHeaders,
  upstreamUrl,
} from './proxy-request.ts';
import { createUpstream, endedWhenWithdrawn, releasedWhenUnread } from './proxy-upstream.ts';

export { routeOf } from './proxy-request.ts';

/**
 * The credential proxy: a request an agent addressed to a route goes to that route's one upstream
 * base URL with the connection's credential applied, and the answer streams back. The agent never
 * sees the credential. Shared by the in-broker `/proxy` surface and the standalone `nexus proxy`;
 * they differ only in where credentials come from (`CredentialSource`).
 */

/** What the proxy needs of a token answer (the `GET /v1/token/{id}` shape). */
export interface ProxyCredential {
  readonly connection_id: string;
  readonly provider_name: string;
  /** The provider's id, where the credential source knows it (the in-broker proxy). */
  readonly provider_id?: string;
  readonly strategy: Strategy;
  readonly credentials: Readonly<Record<string, string>>;
  /** The values of the provider's URL placeholders (decision 0015), when it has any. */
  readonly connection_config?: Readonly<Record<string, string>> | undefined;
}

/**
 * The base URL of a route whose provider's `api_base_url` names `{name}` placeholders: filled with
 * the connection's values; undefined when the connection has no value for one.
 */
export type BaseUrlFor = (credential: ProxyCredential) => URL | undefined;

export type ConnectionRef = { connectionId: string } | { workspaceId: string; providerName: string };

/**
 * Where credentials come from. Both methods enforce the caller's right to use the connection
 * (404 otherwise) and throw NexusErrors: 4xx ones reach the caller as they are.
 */
export interface CredentialSource<Caller> {
  token(caller: Caller, ref: ConnectionRef): Promise<ProxyCredential>;
  /** A forced refresh (single-flight), after the upstream refused the access token. */
  refresh(caller: Caller, connectionId: string): Promise<ProxyCredential>;
}

export interface ProxyRequest<Caller> {
  readonly caller: Caller;
  readonly route: string;
  /** The path below the route, starting with `/`, as the caller encoded it; empty for the base URL itself. */
  readonly path: string;
  /** The raw query string with its `?`, or empty. */
  readonly search: string;
  /** The caller-facing path that stands for the route's base URL (`/proxy/github`): locations are rewritten to it. */
  readonly publicBase: string;
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  /** The request body, unread; undefined when the request has none. */
  readonly body: Readable | undefined;
}

export interface ProxyResult {
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;
  readonly body: Readable;
}

export type ProxyOutcome =
  | 'ok'
  | 'refreshed'
  | 'unknown_route'
  | 'refused'
  | 'token_error'
  | 'injection_failed'
  | 'too_large'
  | 'upstream_error'
  | 'timeout';

/** Told once per proxied call, with what may be recorded (never payloads or credentials). */
export interface ProxyCallInfo {
  route: string;
  connectionId: string | undefined;
  method: string;
  status: number;
  outcome: ProxyOutcome;
  upstreamSeconds: number | undefined;
}

export interface ProxyObserver<Caller> {
  /** Every call, answered or refused (metrics, the audit event); awaited before the answer. */
  done(caller: Caller, info: ProxyCallInfo): Promise<void> | void;
  /**
   * `done` failed (the audit event could not be written) after the request went upstream: the
   * caller still gets the upstream's answer, since an error would have it send the call again,
   * and this reports the unrecorded call. Without it, the error is the answer.
   */
  unrecorded?(caller: Caller, info: ProxyCallInfo, error: unknown): void;
}

export interface ProxyOptions<Caller> {
  /**
   * A route: its one upstream base URL and the provider whose connections it serves (credentials go
   * to no other route), or undefined when there is no such route. The base URL may depend on the
   * connection (`BaseUrlFor`).
   */
  readonly routes: (
    name: string,
  ) => Promise<{ baseUrl: URL | BaseUrlFor; providerName: string; providerId?: string } | undefined>;
  readonly credentials: CredentialSource<Caller>;
  /**
   * Whether `caller` may know of the route of `providerName` (an agent: its grant names the
   * provider). A route it may not is answered as no route at all, before any connection is looked
   * up, so that the proxy does not tell an agent which providers exist outside its grant.
   */
  readonly visible?: (caller: Caller, providerName: string) => Promise<boolean>;
  readonly allowCidrs: readonly string[];
  readonly bodyLimit: number;
  /**
   * The idle deadline from dispatch until the upstream's response headers arrive (the wait for a
   * pooled connection included), and the longest an answer's reader may take nothing of it.
   */
  readonly timeoutMs: number;
  readonly maxRedirects?: number;
  /**
   * Whether an answer still streaming may go on, asked every `recheckMs` (default 5 s) while its
   * body is open: false ends it (the connection revoked, the caller withdrawn).
   */
  readonly stillAllowed?: (caller: Caller, connectionId: string) => Promise<boolean>;
  readonly recheckMs?: number;
  readonly observer?: ProxyObserver<Caller>;
  readonly resolve?: (hostname: string) => Promise<readonly { address: string; family: number }[]>;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

const first = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

export function createProxy<Caller>(options: ProxyOptions<Caller>) {
  const maxRedirects = options.maxRedirects ?? 3;
  const { send, close } = createUpstream(options);

  async function withCredential(
    credential: ProxyCredential,
    method: string,
    url: URL,
    headers: Record<string, string>,
    body: Buffer | undefined,
  ): Promise<{ url: URL; headers: Record<string, string> }> {
    try {
      if (credential.strategy.type === 'aws_sigv4') {
        return {
          url,
          headers: await signSigV4(credential.strategy, credential.credentials, {
            method,
            url,
            headers,
            body,
          }),
        };
      }
      const applied = applyStrategy(credential.strategy, credential.credentials, {
        url,
        headers,
        body: body ?? '',
      });
      return { url: applied.url, headers: { ...applied.headers } };
    } catch (error) {
      throw errorFrom(proxyErrors, 'auth_injection_failed', {
        detail:
          error instanceof StrategyNotApplicable || error instanceof Error ? error.message : String(error),
      });
    }
  }

  const drain = (res: Dispatcher.ResponseData) => {
    res.body.dump().catch(() => {});
  };

  /** Hands a finished call to the observer; see `ProxyObserver.unrecorded` for a failure. */
  async function observed(caller: Caller, info: ProxyCallInfo, sent: boolean): Promise<void> {
    try {
      await options.observer?.done(caller, info);
    } catch (error) {
      if (!sent || options.observer?.unrecorded === undefined) throw error;
      options.observer.unrecorded(caller, info, error);
    }
  }

  async function forward(request: ProxyRequest<Caller>): Promise<ProxyResult> {
    const started = performance.now();
    let connectionId: string | undefined;
    let upstreamSeconds: number | undefined;
    let outcome: ProxyOutcome = 'ok';
    let status = 500;
    let sent = false;
    try {
      let route = await options.routes(request.route);
      if (
        route !== undefined &&
        options.visible &&
        !(await options.visible(request.caller, route.providerName))
      )
        route = undefined;
      if (route === undefined) {
        outcome = 'unknown_route';
        throw errorFrom(proxyErrors, 'unknown_route');
      }
      const ref = connectionRefOf(request.headers, route.providerName);
      let credential: ProxyCredential;
      try {
        credential = await options.credentials.token(request.caller, ref);
      } catch (error) {
        outcome = 'token_error';
        if (error instanceof NexusError && error.status < 500) throw error;
        throw errorFrom(proxyErrors, 'token_fetch_failed', {
          detail: error instanceof Error ? error.message : String(error),
        });
      }
      connectionId = credential.connection_id;
      // By id where both know it: a route remembered for a provider since deleted, its name now
      // another's (a rename), must not carry that one's credentials to the old base URL.
      const mismatch =
        route.providerId !== undefined && credential.provider_id !== undefined
          ? credential.provider_id !== route.providerId
          : credential.provider_name !== route.providerName;
      if (mismatch) {
        outcome = 'refused';
        throw errorFrom(proxyErrors, 'route_mismatch');
      }
      // The egress guard checks the filled URL as any other (`send`).
      const base = typeof route.baseUrl === 'function' ? route.baseUrl(credential) : route.baseUrl;
      if (base === undefined) {
        outcome = 'refused';
        throw errorFrom(proxyErrors, 'base_url_unresolved');
      }
      const url = upstreamUrl(base, request.path, request.search);
      const method = request.method.toUpperCase();
      const base_headers = forwardedHeaders(request.headers);

      const declared = Number(header(request.headers, 'content-length') ?? Number.NaN);
      if (declared > options.bodyLimit) {
        request.body?.resume();
        outcome = 'too_large';
        throw commonError('payload_too_large', {
          message: `The request body is over ${options.bodyLimit} bytes.`,
        });
      }
      const type = credential.strategy.type;
      const signsBody = type === 'hmac_payload' || type === 'aws_sigv4';
      let body: Buffer | LimitedBody | undefined;
      try {
        if (request.body === undefined) body = signsBody ? Buffer.alloc(0) : undefined;
        else if (signsBody || (type === 'oauth2' && declared <= REPLAY_BUFFER_BYTES))
          body = await buffer(request.body, options.bodyLimit);
        else {
          // pipeline, not pipe: a caller that aborts its upload aborts the upstream request too.
          const streamed = limited(options.bodyLimit);
          pipeline(request.body, streamed).catch(() => {});
          body = streamed;
        }
      } catch (error) {
        outcome = 'too_large';
        throw error;
      }
      const replayable = body === undefined || Buffer.isBuffer(body);
      const bytes = Buffer.isBuffer(body) ? body : undefined;

      const upstreamStarted = performance.now();
      let applied = await withCredential(credential, method, url, base_headers, bytes).catch((error) => {
        outcome = 'injection_failed';
        throw error;
      });
      sent = true;
      let res = await send(method, applied.url, applied.headers, body);
      if (res.statusCode === 401 && type === 'oauth2' && replayable) {
        drain(res);
        try {
          credential = await options.credentials.refresh(request.caller, credential.connection_id);
        } catch (error) {
          outcome = 'token_error';
          if (error instanceof NexusError && error.status < 500) throw error;
          throw errorFrom(proxyErrors, 'token_fetch_failed');
        }
        applied = await withCredential(credential, method, url, base_headers, bytes);
        res = await send(method, applied.url, applied.headers, body);
        outcome = 'refreshed';
      }
      // Redirects are followed only when the body can be sent again; each hop is address-checked,
      // and the credential goes only to the route's own origin.
      let current = applied.url;
      let hopMethod = method;
      let hopBody = body;
      for (let hop = 0; REDIRECTS.has(res.statusCode) && first(res.headers.location) && replayable; hop++) {
        if (hop >= maxRedirects) break;
        const next = URL.parse(first(res.headers.location)!, current.href);
        if (next === null) break;
        drain(res);
        if (res.statusCode === 303 || (hopMethod === 'POST' && res.statusCode < 303)) {
          hopMethod = 'GET';
          hopBody = undefined;
        }
        const hopHeaders = insideBase(base, next)
          ? (
              await withCredential(
                credential,
                hopMethod,
                next,
                base_headers,
                Buffer.isBuffer(hopBody) ? hopBody : undefined,
              )
            ).headers
          : base_headers;
        res = await send(hopMethod, next, hopHeaders, hopBody);
        current = next;
      }
      upstreamSeconds = (performance.now() - upstreamStarted) / 1000;
      // A status no HTTP server may send, which no reply could carry on (undici passes 600–999).
      if (res.statusCode > 599) {
        res.body.destroy();
        throw errorFrom(proxyErrors, 'upstream_error', {
          message: `The upstream answered with status ${res.statusCode}, which is not an HTTP status.`,
        });
      }
      status = res.statusCode;
      const headers = responseHeaders(res.headers, {
        base,
        current,
        publicPath: request.publicBase,
        queryParam: type === 'query_param' ? (credential.strategy.config.param_name ?? undefined) : undefined,
        secrets: Object.values(credential.credentials),
      });
      const answer = releasedWhenUnread(res.body, options.timeoutMs);
      const { stillAllowed } = options;
      const id = connectionId;
      return {
        status,
        headers,
        body:
          stillAllowed === undefined || id === undefined
            ? answer
            : endedWhenWithdrawn(answer, () => stillAllowed(request.caller, id), options.recheckMs ?? 5_000),
      };
    } catch (error) {
      if (error instanceof NexusError) {
        status = error.status;
        if (outcome === 'ok')
          outcome =
            error.code === 'upstream_timeout'
              ? 'timeout'
              : error.code === 'upstream_error'
                ? 'upstream_error'
                : error.code === 'payload_too_large'
                  ? 'too_large'
                  : error.code === 'auth_injection_failed'
                    ? 'injection_failed'
                    : 'refused';
      } else outcome = 'upstream_error';
      throw error;
    } finally {
      const info: ProxyCallInfo = {
        route: request.route,
        connectionId,
        method: request.method,
        status,
        outcome,
        upstreamSeconds:
          upstreamSeconds ?? (outcome === 'ok' ? (performance.now() - started) / 1000 : undefined),
      };
      await observed(request.caller, info, sent);
    }
  }

  return { forward, close };
}

export type Proxy = ReturnType<typeof createProxy>;
