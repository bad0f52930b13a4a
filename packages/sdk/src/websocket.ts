/**
 * `maintainWebSocket`: keeps one WebSocket authenticated with a Nexus connection's credential for as
 * long as the caller wants it (the original's nexus-bridge `MaintainWebSocket`; the Go SDK's
 * sdks/go/bridge_ws.go is the reference behaviour). websocket-session.ts runs each connection.
 *
 * On `ws`, not the WHATWG `WebSocket` of Node 22+: that one cannot send handshake headers (the
 * oauth2, header, basic_auth and aws_sigv4 strategies put the credential there), does not expose the
 * handshake's status (401 must be told from 503), cannot ping, and has no incoming size limit.
 */

import type { Agent } from 'node:http';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { abortable, type Held, HeldCredential } from './held-credential.ts';
import { sleep } from './http.ts';
import {
  type BridgeLogger,
  type BridgeMetrics,
  credentialStop,
  normalizePolicy,
  PermanentConnectionError,
  permanentCredentialError,
  type ReconnectPolicy,
  reconnectDelay,
  redactedUrl,
  sameCredential,
  type TokenProvider,
} from './persistent.ts';
import { applyStrategy } from './strategies.ts';
import type { TokenResponse } from './types.ts';
import {
  CredentialRefreshedError,
  CredentialRefusedError,
  openSession,
  type SessionOptions,
  type WebSocketHandler,
} from './websocket-session.ts';

export interface MaintainWebSocketOptions {
  /** Stops the loop: the open connection is closed with 1000 and the promise rejects with the reason. */
  signal?: AbortSignal;
  /** How reconnections back off. Default 1 s doubling to 30 s, jittered; reset after 1 min up. */
  retry?: ReconnectPolicy;
  /**
   * Refresh this long before `expires_at`. Default 5 min (never more than half the remaining life,
   * never sooner than 5 s after the credential was read).
   */
  refreshBufferMs?: number;
  /** Largest message either way, in bytes. Default 1 MiB. */
  maxMessageBytes?: number;
  /** Ping period (0: none). No pong nor message for interval + write timeout reconnects. Default 30 s. */
  pingIntervalMs?: number;
  /** Bound on each write and on the close handshake. Default 10 s. */
  writeTimeoutMs?: number;
  /** Bound on the opening handshake. Default 45 s. */
  handshakeTimeoutMs?: number;
  /**
   * In-band re-authentication: after each refresh, this message (in the server's own format) is sent
   * over the open connection instead of reconnecting. It gets the new credential and must not log it.
   */
  reauthMessage?: (token: TokenResponse) => string | Uint8Array | Promise<string | Uint8Array>;
  /**
   * Without `reauthMessage`: close (1000) and reconnect at once after a refresh (default true: a server
   * may check a credential's expiry on open connections). false keeps the connection, for servers that
   * check the credential only at the handshake; the new one is used at the next connect.
   */
  reconnectOnRefresh?: boolean;
  /** Close codes that end the loop. Default 1002 1003 1007 1008 1010 3003 4403. */
  permanentCloseCodes?: readonly number[];
  /** Connection events (counters, status). */
  metrics?: BridgeMetrics;
  /** Structured logs; never a credential. */
  log?: BridgeLogger;
  /** TLS settings for wss:// (a private CA, a client certificate). */
  tls?: Pick<TlsOptions, 'ca' | 'cert' | 'key' | 'servername' | 'rejectUnauthorized'>;
  /** The HTTP agent that dials (a proxy agent, say). */
  agent?: Agent;
  /** Clock (ms since the epoch) for the credential's expiry. Default `Date.now`. */
  now?: () => number;
}

export const DEFAULT_PERMANENT_CLOSE_CODES: readonly number[] = Object.freeze([
  1002, 1003, 1007, 1008, 1010, 3003, 4403,
]);

/**
 * Keeps a WebSocket to `url` (ws:// or wss://) open with the credential of a Nexus connection until
 * `options.signal` aborts (rejects with its reason, after a close handshake with code 1000) or a
 * permanent failure (rejects with a `PermanentConnectionError`). It never resolves.
 *
 * - The credential is applied to the handshake request: oauth2 (`Authorization: Bearer`), header,
 *   query_param, basic_auth, and aws_sigv4 (the handshake is a GET signed like any other, as AWS API
 *   Gateway's WebSocket APIs expect). hmac_payload is refused (`StrategyError`): it signs a request
 *   body and a handshake has none, so its signature would be a constant anyone who saw it could replay.
 * - Before the credential expires (`refreshBufferMs`) it is refreshed; the connection then
 *   re-authenticates in band when `reauthMessage` is set, else is closed (1000) and opened again at
 *   once with the new credential (`reconnectOnRefresh`).
 * - A handshake answered 401 or 403, or a close code 3000 or 4401: the server refused the credential;
 *   it is refreshed and the connection opened again (at once the first time, then with backoff).
 * - Other failures (the network, 5xx, 408, 429, other close codes, a missing pong, an incoming message
 *   above the size limit) reconnect with exponential backoff and jitter (`retry`); the credential is
 *   read from the broker again before each reconnect.
 * - Permanent: the broker says the grant needs the user (attention_required), the connection is
 *   revoked or unknown, the strategy cannot apply, a handshake answered another status, or a permanent
 *   close code (`permanentCloseCodes`).
 */
export async function maintainWebSocket(
  target: { client: TokenProvider; connectionId: string },
  url: string | URL,
  handler: WebSocketHandler,
  options: MaintainWebSocketOptions = {},
): Promise<never> {
  const { connectionId } = target;
  const endpoint = parseEndpoint(url, connectionId);
  const signal = options.signal ?? new AbortController().signal;
  const policy = normalizePolicy(options.retry);
  const metrics = options.metrics ?? {};
  const log: BridgeLogger = options.log ?? (() => undefined);
  const fields = { connection_id: connectionId, transport: 'websocket', endpoint: redactedUrl(endpoint) };
  const session = sessionOptions(options);
  const held = new HeldCredential({
    tp: target.client,
    connectionId,
    refreshBufferMs: options.refreshBufferMs ?? 5 * 60_000,
    now: options.now ?? Date.now,
    metrics,
    transport: 'websocket',
  });

  let attempt = 0;
  let refusedBefore = false; // the previous attempt's credential was refused too
  let reread = false; // read the credential from the broker again before the next dial
  for (;;) {
    signal.throwIfAborted();
    const start = Date.now();
    let connected = false;
    let error: unknown;
    let used: Held | undefined;
    try {
      used = await abortable(reread ? held.reread() : held.current(), signal);
      const run = await connectOnce(endpoint, used.token, {
        connectionId,
        held,
        handler,
        session,
        signal,
        log,
        fields,
        metrics,
      });
      connected = run.connected;
      error = run.error;
    } catch (e) {
      error = used === undefined && permanentCredentialError(e) ? credentialStop(connectionId, e) : e;
    }
    signal.throwIfAborted();

    let now = false;
    if (error instanceof PermanentConnectionError) {
      log('error', 'stopped: this connection cannot be maintained', { ...fields, error: String(error) });
      throw error;
    } else if (error instanceof CredentialRefreshedError) {
      now = true;
      refusedBefore = false;
      reread = false;
    } else if (error instanceof CredentialRefusedError && used !== undefined) {
      let next: Held | undefined;
      try {
        next = await abortable(held.refused(used.gen), signal);
      } catch (e) {
        signal.throwIfAborted();
        if (permanentCredentialError(e)) {
          const stop = credentialStop(connectionId, e);
          log('error', 'stopped: the server refused the credential and the broker has no other', {
            ...fields,
            error: String(stop),
          });
          throw stop;
        }
      }
      // A refreshed credential is tried at once, unless the one before was refused just as quickly:
      // then with backoff (the broker does not refresh again right away).
      const quick = !connected || Date.now() - start < policy.minBackoffMs;
      now = next !== undefined && !sameCredential(next.token, used.token) && !(refusedBefore && quick);
      refusedBefore = true;
      reread = false;
    } else {
      reread = true;
      if (connected) refusedBefore = false;
    }
    if (connected && Date.now() - start >= policy.resetAfterMs) attempt = 0;
    if (now) {
      log('info', 'reconnecting with a refreshed credential', { ...fields, reason: String(error) });
      continue;
    }
    const wait = reconnectDelay(attempt, policy);
    attempt += 1;
    log('warn', 'reconnecting', { ...fields, after_ms: Math.round(wait), attempt, error: String(error) });
    await sleep(wait, signal);
  }
}

interface ConnectContext {
  connectionId: string;
  held: HeldCredential;
  handler: WebSocketHandler;
  session: SessionOptions;
  signal: AbortSignal;
  log: BridgeLogger;
  fields: Record<string, unknown>;
  metrics: BridgeMetrics;
}

/** Dials once with `token` and, once connected, runs the connection until it ends. */
async function connectOnce(
  endpoint: URL,
  token: TokenResponse,
  c: ConnectContext,
): Promise<{ connected: boolean; error: unknown }> {
  if (token.strategy.type === 'hmac_payload')
    return {
      connected: false,
      error: new PermanentConnectionError({
        connectionId: c.connectionId,
        reason: 'strategy not applicable',
        code: 'strategy_not_applicable',
        cause: new Error(
          'hmac_payload signs a request body and a WebSocket handshake has none: its signature would be a replayable constant.',
        ),
      }),
    };
  // The handshake is an HTTP GET: the strategy applies to it as to any request.
  const http = new URL(endpoint);
  http.protocol = endpoint.protocol === 'wss:' ? 'https:' : 'http:';
  let applied: Awaited<ReturnType<typeof applyStrategy>>;
  try {
    applied = await applyStrategy(
      token.strategy,
      token.credentials,
      { url: http, method: 'GET', headers: {}, body: undefined },
      { now: Date.now },
    );
  } catch (error) {
    return { connected: false, error: credentialStop(c.connectionId, error) };
  }
  const dial = new URL(applied.url);
  dial.protocol = endpoint.protocol;
  const { opened, ended } = openSession(dial.toString(), applied.headers, {
    connectionId: c.connectionId,
    held: c.held,
    token,
    handler: c.handler,
    options: c.session,
    signal: c.signal,
    log: c.log,
    fields: c.fields,
  });
  try {
    await opened;
  } catch (error) {
    return { connected: false, error };
  }
  c.metrics.connection?.('websocket');
  c.metrics.status?.('websocket', c.connectionId, true);
  c.log('info', 'connected', c.fields);
  const end = await ended;
  c.metrics.status?.('websocket', c.connectionId, false);
  c.metrics.disconnect?.('websocket', end.reason);
  c.log('info', 'disconnected', { ...c.fields, reason: end.reason, error: String(end.error) });
  return { connected: true, error: end.error };
}

function parseEndpoint(url: string | URL, connectionId: string): URL {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') || parsed.host === '')
    throw new PermanentConnectionError({
      connectionId,
      reason: 'invalid endpoint',
      code: 'invalid_endpoint',
      cause: new TypeError('The endpoint must be a ws:// or wss:// URL.'),
    });
  return parsed;
}

function sessionOptions(o: MaintainWebSocketOptions): SessionOptions {
  const positive = (v: number | undefined, d: number) => (v !== undefined && v > 0 ? v : d);
  return {
    maxMessageBytes: positive(o.maxMessageBytes, 1 << 20),
    pingIntervalMs: o.pingIntervalMs ?? 30_000,
    writeTimeoutMs: positive(o.writeTimeoutMs, 10_000),
    handshakeTimeoutMs: positive(o.handshakeTimeoutMs, 45_000),
    reauth: o.reauthMessage,
    reconnectOnRefresh: o.reconnectOnRefresh ?? true,
    permanentCloseCodes: new Set(o.permanentCloseCodes ?? DEFAULT_PERMANENT_CLOSE_CODES),
    dial: { ...o.tls, ...(o.agent ? { agent: o.agent } : {}) },
  };
}
