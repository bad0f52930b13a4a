/**
 * The one place that talks HTTP to the broker: authentication headers, per-attempt timeouts, bounded
 * retries with exponential backoff and jitter, and typed errors.
 */
import type { ResolvedConfig, ResolvedRetry, RetryOptions } from './config.ts';
import { BrokerUnavailableError, errorFromResponse, NexusError } from './errors.ts';

export type QueryValue = string | number | boolean | undefined;

export interface CallOptions {
  /** Aborts the call (and its retries). */
  signal?: AbortSignal;
  /** Overrides the client's per-attempt timeout for this call. */
  timeoutMs?: number;
  /** Overrides the client's retry policy for this call. */
  retry?: RetryOptions;
}

export interface BrokerRequest extends CallOptions {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, QueryValue>;
  json?: unknown;
  form?: Record<string, string | undefined>;
  headers?: Record<string, string>;
  /** false: send no credential (the login request itself). */
  auth?: boolean;
  /** Safe to resend after an ambiguous failure (timeout, reset). Default: GET, PUT, DELETE. */
  idempotent?: boolean;
  /** Names the connection in an AttentionRequiredError. */
  connectionId?: string;
}

/** Supplies the credential headers; `invalidate` drops a cached token after a 401. */
export interface Authorizer {
  headers(options: CallOptions): Promise<Record<string, string>>;
  /**
   * After a 401 for the credential headers `refused` (what `headers` gave for that request): drops
   * the cached token if it is still that one. true when a fresh credential may fix a 401 (an agent
   * token can be renewed, an API key cannot).
   */
  invalidate(refused?: Record<string, string>): boolean;
}

/** Retried for every call: the broker did not do the work (or asks to come back later). */
const RETRY_STATUSES = new Set([429, 503]);
/** Retried only for calls safe to repeat: a gateway error does not say whether the work was done. */
const RETRY_STATUSES_IDEMPOTENT = new Set([502, 504]);
/** Failures where the request never reached the broker: always safe to resend. */
const NOT_DELIVERED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/** Exponential backoff with equal jitter: half the capped delay plus a random half. */
export function backoffDelay(
  attempt: number,
  retry: ResolvedRetry,
  random: () => number = Math.random,
): number {
  const capped = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** attempt);
  return capped / 2 + random() * (capped / 2);
}

/** `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, in ms from `now`. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** AbortSignal.any where available (Node 20.3+), else a manual combination. */
export function anySignal(signals: (AbortSignal | undefined)[]): AbortSignal {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  if (present.length === 1) return present[0]!;
  if (typeof AbortSignal.any === 'function') return AbortSignal.any(present);
  const controller = new AbortController();
  for (const s of present) {
    if (s.aborted) {
      controller.abort(s.reason);
      break;
    }
    s.addEventListener('abort', () => controller.abort(s.reason), { once: true });
  }
  return controller.signal;
}

function networkCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current !== null && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

export class Transport {
  readonly config: ResolvedConfig;
  private authorizer: Authorizer | undefined;

  constructor(config: ResolvedConfig) {
    this.config = config;
  }

  setAuthorizer(authorizer: Authorizer): void {
    this.authorizer = authorizer;
  }

  /** Sends a request to the broker and returns its JSON body, or throws a typed NexusError. */
  async request<T>(req: BrokerRequest): Promise<T> {
    const { now, onRetry } = this.config;
    const retry: ResolvedRetry = { ...this.config.retry, ...definedOnly(req.retry) };
    const idempotent =
      req.idempotent ?? (req.method === 'GET' || req.method === 'PUT' || req.method === 'DELETE');
    let reauthenticated = false;
    for (let attempt = 0; ; attempt++) {
      const canRetry = attempt < retry.maxRetries;
      let response: Response;
      let sentAuth: Record<string, string> | undefined;
      try {
        ({ response, auth: sentAuth } = await this.send(req));
      } catch (error) {
        if (req.signal?.aborted) throw req.signal.reason;
        // A login failure (already typed and retried) or something that is not a network error.
        if (error instanceof NexusError || !(error instanceof Error)) throw error;
        const code = networkCode(error);
        const timedOut = error.name === 'TimeoutError';
        const safe = (code !== undefined && NOT_DELIVERED.has(code)) || idempotent;
        if (canRetry && safe) {
          const delayMs = backoffDelay(attempt, retry);
          onRetry?.({
            attempt: attempt + 1,
            delayMs,
            method: req.method,
            path: req.path,
            reason: code ?? error.name,
          });
          await sleep(delayMs, req.signal);
          continue;
        }
        throw new BrokerUnavailableError(
          timedOut
            ? `The broker at ${this.config.baseUrl} did not answer ${req.method} ${req.path} within ${req.timeoutMs ?? this.config.timeoutMs} ms.`
            : `Could not reach the broker at ${this.config.baseUrl} (${code ?? error.message})${attempt > 0 ? ` after ${attempt + 1} attempts` : ''}.`,
          { code: timedOut ? 'timeout' : 'broker_unavailable', cause: error },
        );
      }
      const requestId = response.headers.get('x-request-id') ?? undefined;
      if (response.ok) {
        const text = await response.text();
        if (text === '') return undefined as T;
        try {
          return JSON.parse(text) as T;
        } catch (error) {
          throw new NexusError(
            `The broker answered ${req.method} ${req.path} with a body that is not JSON.`,
            {
              status: response.status,
              code: 'invalid_response',
              requestId,
              cause: error,
            },
          );
        }
      }
      const body = await readJson(response);
      if (
        response.status === 401 &&
        req.auth !== false &&
        !reauthenticated &&
        this.authorizer?.invalidate(sentAuth)
      ) {
        reauthenticated = true;
        attempt--;
        continue;
      }
      const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), now());
      const retryable =
        RETRY_STATUSES.has(response.status) || (idempotent && RETRY_STATUSES_IDEMPOTENT.has(response.status));
      if (retryable && canRetry) {
        const delayMs =
          retryAfterMs !== undefined
            ? Math.min(retryAfterMs, retry.maxDelayMs)
            : backoffDelay(attempt, retry);
        onRetry?.({
          attempt: attempt + 1,
          delayMs,
          method: req.method,
          path: req.path,
          reason: `HTTP ${response.status}`,
        });
        await sleep(delayMs, req.signal);
        continue;
      }
      throw errorFromResponse(response.status, body, requestId, {
        connectionId: req.connectionId,
        retryAfterMs,
      });
    }
  }

  /** One attempt; also returns the credential headers it carried (for `invalidate` after a 401). */
  private async send(
    req: BrokerRequest,
  ): Promise<{ response: Response; auth: Record<string, string> | undefined }> {
    const url = new URL(this.config.baseUrl + req.path);
    for (const [name, value] of Object.entries(req.query ?? {}))
      if (value !== undefined) url.searchParams.set(name, String(value));
    const headers: Record<string, string> = {
      accept: 'application/json',
      'user-agent': this.config.userAgent,
      ...req.headers,
    };
    let body: string | undefined;
    if (req.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(req.json);
    } else if (req.form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      const form = new URLSearchParams();
      for (const [name, value] of Object.entries(req.form)) if (value !== undefined) form.set(name, value);
      body = form.toString();
    }
    let auth: Record<string, string> | undefined;
    if (req.auth !== false && this.authorizer) {
      auth = await this.authorizer.headers({ ...(req.signal ? { signal: req.signal } : {}) });
      Object.assign(headers, auth);
    }
    const signal = anySignal([req.signal, AbortSignal.timeout(req.timeoutMs ?? this.config.timeoutMs)]);
    const response = await this.config.fetch(url, {
      method: req.method,
      headers,
      body: body ?? null,
      signal,
    });
    return { response, auth };
  }
}

function definedOnly(options: RetryOptions | undefined): Partial<ResolvedRetry> {
  const out: { -readonly [K in keyof ResolvedRetry]?: number } = {};
  if (options?.maxRetries !== undefined) out.maxRetries = options.maxRetries;
  if (options?.baseDelayMs !== undefined) out.baseDelayMs = options.baseDelayMs;
  if (options?.maxDelayMs !== undefined) out.maxDelayMs = options.maxDelayMs;
  return out;
}

async function readJson(response: Response): Promise<unknown> {
  try {
    const text = await response.text();
    return text === '' ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
}
