/**
 * What the persistent-connection bridge (`maintainWebSocket`, the original's nexus-bridge) shares:
 * its reconnect policy, its typed permanent error, which broker failures are permanent, and the
 * metrics and log hooks. The Go SDK's `Bridge` (sdks/go/bridge_conn.go) is the reference behaviour.
 */
import {
  AttentionRequiredError,
  AuthenticationError,
  ConflictError,
  InvalidRequestError,
  NotFoundError,
  PermissionDeniedError,
  StrategyError,
} from './errors.ts';
import type { CallOptions } from './http.ts';
import type { TokenResponse } from './types.ts';

/** Where a maintained connection reads its credential. `NexusClient` is one. */
export interface TokenProvider {
  getToken(connectionId: string, options?: CallOptions): Promise<TokenResponse>;
  refreshConnection(connectionId: string, options?: CallOptions): Promise<TokenResponse>;
}

/**
 * How a maintained connection waits before it is opened again: attempt n (from 0) waits
 * `minBackoffMs·2ⁿ`, at most `maxBackoffMs`, jittered to a random value between half and all of it
 * (so that many agents dropped at once do not come back in step).
 */
export interface ReconnectPolicy {
  /** Default 1000. */
  minBackoffMs?: number;
  /** Default 30000. */
  maxBackoffMs?: number;
  /** A connection that stayed up this long starts again from `minBackoffMs`. Default 60000. */
  resetAfterMs?: number;
}

export const DEFAULT_RECONNECT_POLICY: Readonly<Required<ReconnectPolicy>> = Object.freeze({
  minBackoffMs: 1000,
  maxBackoffMs: 30_000,
  resetAfterMs: 60_000,
});

export function normalizePolicy(p: ReconnectPolicy = {}): Required<ReconnectPolicy> {
  const d = DEFAULT_RECONNECT_POLICY;
  const minBackoffMs = p.minBackoffMs && p.minBackoffMs > 0 ? p.minBackoffMs : d.minBackoffMs;
  let maxBackoffMs = p.maxBackoffMs ?? d.maxBackoffMs;
  if (maxBackoffMs < minBackoffMs) maxBackoffMs = Math.max(minBackoffMs, d.maxBackoffMs);
  const resetAfterMs = p.resetAfterMs && p.resetAfterMs > 0 ? p.resetAfterMs : d.resetAfterMs;
  return { minBackoffMs, maxBackoffMs, resetAfterMs };
}

/** The wait before attempt n (0 for the first retry), in ms. */
export function reconnectDelay(
  n: number,
  policy: Required<ReconnectPolicy>,
  random: () => number = Math.random,
): number {
  const capped = n < 30 ? Math.min(policy.maxBackoffMs, policy.minBackoffMs * 2 ** n) : policy.maxBackoffMs;
  return capped / 2 + random() * (capped / 2);
}

/**
 * Ends `maintainWebSocket`: trying again cannot help. `cause` says why: an `AttentionRequiredError`
 * (the user must reconnect their account), a `ConflictError` `connection_not_active` or a
 * `NotFoundError` (the connection was revoked or deleted), a `StrategyError` (a credential with no
 * form for this transport), or the `WebSocketCloseError` of a permanent close code.
 */
export class PermanentConnectionError extends Error {
  readonly connectionId: string;
  /** A short, stable description (`attention required`, `close code 1008`, …). */
  readonly reason: string;
  /** The WebSocket close code that ended the connection, 0 if none. */
  readonly closeCode: number;
  /** `attention_required`, `connection_not_active`, `not_found`, `strategy_not_applicable`, … */
  readonly code: string;

  constructor(init: {
    connectionId: string;
    reason: string;
    code: string;
    closeCode?: number;
    cause: unknown;
  }) {
    const why = init.cause instanceof Error ? init.cause.message : String(init.cause);
    super(`Connection ${init.connectionId} stopped (${init.reason}): ${why}`, { cause: init.cause });
    this.name = 'PermanentConnectionError';
    this.connectionId = init.connectionId;
    this.reason = init.reason;
    this.code = init.code;
    this.closeCode = init.closeCode ?? 0;
  }
}

/**
 * Whether a failure to read the credential means no later attempt can succeed: the grant is gone
 * (attention_required), the connection is not active any more (revoked, expired), unknown, not this
 * agent's to use, or its credential cannot be applied. An unreachable or failing broker, a rate
 * limit, a refresh in progress are temporary.
 */
export function permanentCredentialError(error: unknown): boolean {
  if (error instanceof AttentionRequiredError || error instanceof StrategyError) return true;
  if (error instanceof ConflictError) return error.code === 'connection_not_active';
  return (
    error instanceof NotFoundError ||
    error instanceof PermissionDeniedError ||
    error instanceof AuthenticationError ||
    error instanceof InvalidRequestError
  );
}

/** The permanent error for a credential the broker will not give. */
export function credentialStop(connectionId: string, error: unknown): PermanentConnectionError {
  const reason =
    error instanceof AttentionRequiredError
      ? 'attention required'
      : error instanceof ConflictError && error.code === 'connection_not_active'
        ? 'connection not active'
        : error instanceof NotFoundError
          ? 'connection not found'
          : error instanceof StrategyError
            ? 'strategy not applicable'
            : 'credential refused by the broker';
  const code = (error as { code?: unknown }).code;
  return new PermanentConnectionError({
    connectionId,
    reason,
    code: typeof code === 'string' ? code : 'credential_refused',
    cause: error,
  });
}

/** Why a maintained connection ended, for metrics. */
export type DisconnectReason = 'dropped' | 'unauthorized' | 'refresh' | 'too_large' | 'permanent' | 'closed';

/**
 * Receives the events of maintained connections (the Go SDK's `BridgeMetrics`, as callbacks). Any
 * may be left out. `transport` is `websocket`.
 */
export interface BridgeMetrics {
  /** A connection was established (a handshake that succeeded). */
  connection?(transport: string): void;
  /** A connection ended, and why. */
  disconnect?(transport: string, reason: DisconnectReason): void;
  /** The credential was refreshed ahead of expiry or after the server refused it. */
  tokenRefresh?(transport: string, result: 'ok' | 'error'): void;
  /** Whether a maintained connection is up. */
  status?(transport: string, connectionId: string, up: boolean): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * A structured log record: `fields` carry `connection_id`, `transport`, `endpoint` (without its query
 * string or user information) and, for failures, `error`; never a credential.
 */
export type BridgeLogger = (level: LogLevel, message: string, fields: Record<string, unknown>) => void;

/** A URL for logs: no query (a query_param credential goes there), no user information. */
export function redactedUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/** Whether two tokens apply the same credential. */
export function sameCredential(a: TokenResponse | undefined, b: TokenResponse | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return (
    a.strategy.type === b.strategy.type &&
    a.access_token === b.access_token &&
    sameRecord(a.credentials, b.credentials) &&
    sameRecord(a.strategy.config ?? {}, b.strategy.config ?? {})
  );
}

function sameRecord(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
