/**
 * The credential of one maintained connection: cached until shortly before it expires, fetched once
 * however many users want it at the same moment (single-flight), with a generation number so that a
 * credential the server refused is refreshed once, not once per report (sdks/go/bridge_conn.go,
 * `heldCredential`).
 */
import { BrokerUnavailableError, ConflictError, ServerError } from './errors.ts';
import { sleep } from './http.ts';
import type { BridgeLogger, BridgeMetrics, TokenProvider } from './persistent.ts';
import { permanentCredentialError, sameCredential } from './persistent.ts';
import type { TokenResponse } from './types.ts';

/** A credential kept after a failed refresh is used this long before the refresh is tried again. */
export const STALE_RETRY_MS = 5000;
/** A credential is never refreshed sooner than this after it was read. */
const MIN_FRESH_MS = 5000;
/** A credential without `expires_at` (a static one) is read again this often. */
const STATIC_REREAD_MS = 5 * 60_000;

export interface Held {
  token: TokenResponse;
  /** Incremented by every successful fetch. */
  gen: number;
}

type Reason = 'initial' | 'stale' | 'forced';

/**
 * When a credential that expires at `expiresAt` stops being fresh: `bufferMs` before it, but never
 * less than half of its remaining life (a short-lived credential is not refreshed on every use) nor
 * less than 5 s.
 */
export function freshUntil(now: number, expiresAt: number, bufferMs: number): number {
  const remaining = expiresAt - now;
  return now + Math.max(remaining - bufferMs, remaining / 2, MIN_FRESH_MS);
}

export class HeldCredential {
  readonly #tp: TokenProvider;
  readonly #connectionId: string;
  readonly #bufferMs: number;
  readonly #now: () => number;
  readonly #metrics: BridgeMetrics;
  readonly #transport: string;
  #val: TokenResponse | undefined;
  #freshUntil = 0;
  #gen = 0;
  #inflight: Promise<Held> | undefined;
  /** The next fetch reads the credential (getToken) instead of refreshing it. */
  #rereadNext = false;

  constructor(init: {
    tp: TokenProvider;
    connectionId: string;
    refreshBufferMs: number;
    now: () => number;
    metrics: BridgeMetrics;
    transport: string;
  }) {
    this.#tp = init.tp;
    this.#connectionId = init.connectionId;
    this.#bufferMs = init.refreshBufferMs;
    this.#now = init.now;
    this.#metrics = init.metrics;
    this.#transport = init.transport;
  }

  /** A fresh credential: the cached one, else one broker call shared by every caller. */
  current(): Promise<Held> {
    return this.#get(undefined);
  }

  /** After the server refused the credential of generation `gen`: refreshed, unless a newer one exists. */
  refused(gen: number): Promise<Held> {
    return this.#get(gen);
  }

  /**
   * Reads the credential from the broker again (getToken, not a refresh): before a connection is
   * opened again after a drop, so that a connection revoked meanwhile stops the loop instead of being
   * used with a cached credential. If the broker cannot be reached, a still-valid cached credential
   * is used.
   */
  reread(): Promise<Held> {
    this.#rereadNext = true;
    this.#freshUntil = 0;
    return this.#get(undefined);
  }

  /** When the cached credential stops being fresh (ms since the epoch). */
  get nextRefresh(): number {
    return this.#freshUntil;
  }

  #get(staleGen: number | undefined): Promise<Held> {
    if (this.#inflight) return this.#inflight;
    let reason: Reason;
    const val = this.#val;
    if (val === undefined) reason = 'initial';
    else if (staleGen !== undefined && staleGen === this.#gen) reason = 'forced';
    else if (this.#now() < this.#freshUntil) return Promise.resolve({ token: val, gen: this.#gen });
    else reason = 'stale';
    const flight = this.#fetch(reason, val)
      .then(
        (token) => {
          this.#val = token;
          this.#gen += 1;
          const now = this.#now();
          this.#freshUntil =
            token.expires_at === null
              ? now + STATIC_REREAD_MS
              : freshUntil(now, Date.parse(token.expires_at), this.#bufferMs);
          return { token, gen: this.#gen };
        },
        (error: unknown) => {
          // Refreshing ahead of expiry failed but the credential still works: use it a little longer.
          const until = reason === 'stale' && val !== undefined ? this.#keepUntil(val, error) : undefined;
          if (until === undefined || val === undefined) throw error;
          this.#freshUntil = until;
          return { token: val, gen: this.#gen };
        },
      )
      .finally(() => {
        this.#inflight = undefined;
      });
    this.#inflight = flight;
    return flight;
  }

  /** Reads the first time; later makes the broker refresh an OAuth credential, or reads a static one again. */
  async #fetch(reason: Reason, prev: TokenResponse | undefined): Promise<TokenResponse> {
    const reread = this.#rereadNext;
    this.#rereadNext = false;
    const id = this.#connectionId;
    let result: Promise<TokenResponse>;
    if (!reread && reason !== 'initial' && prev?.strategy.type === 'oauth2') {
      result = this.#tp.refreshConnection(id).catch((error: unknown) => {
        if (error instanceof ConflictError && error.code === 'refresh_not_supported')
          return this.#tp.getToken(id);
        throw error;
      });
    } else {
      result = this.#tp.getToken(id);
    }
    if (reason === 'initial' || reread) return result;
    return result.then(
      (token) => {
        this.#metrics.tokenRefresh?.(this.#transport, 'ok');
        return token;
      },
      (error: unknown) => {
        this.#metrics.tokenRefresh?.(this.#transport, 'error');
        throw error;
      },
    );
  }

  /**
   * A credential whose refresh failed because the broker was unreachable or answered 5xx may be used
   * until it actually expires (retrying every STALE_RETRY_MS). Any other failure reaches the caller.
   */
  #keepUntil(prev: TokenResponse, error: unknown): number | undefined {
    if (!(error instanceof BrokerUnavailableError || error instanceof ServerError)) return undefined;
    const now = this.#now();
    const until = now + STALE_RETRY_MS;
    if (prev.expires_at === null) return until;
    const expires = Date.parse(prev.expires_at);
    return now < expires ? Math.min(until, expires) : undefined;
  }

  /**
   * Refreshes the credential ahead of its expiry until `signal` aborts, calling `changed` with each
   * credential that differs from the one before (a static credential read again unchanged is not a
   * change). Resolves only with a permanent failure; a temporary one keeps the still-valid credential
   * and is tried again. Rejects with the signal's reason when aborted.
   */
  async refreshLoop(
    last: TokenResponse,
    changed: (token: TokenResponse) => void,
    signal: AbortSignal,
    log: BridgeLogger,
    fields: Record<string, unknown>,
  ): Promise<unknown> {
    for (;;) {
      await sleep(Math.max(this.#freshUntil - this.#now(), 50), signal);
      let held: Held;
      try {
        held = await abortable(this.current(), signal);
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        if (permanentCredentialError(error)) {
          log('error', 'credential refresh failed for good', { ...fields, error: String(error) });
          return error;
        }
        log('warn', 'credential refresh failed; trying again', { ...fields, error: String(error) });
        await sleep(STALE_RETRY_MS, signal);
        continue;
      }
      if (!sameCredential(last, held.token)) {
        log('info', 'credential refreshed', { ...fields, expires_at: held.token.expires_at });
        last = held.token;
        changed(held.token);
      }
    }
  }
}

/** `promise`, or the signal's reason as soon as it aborts (the shared work goes on for others). */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
