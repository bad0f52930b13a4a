/**
 * One WebSocket connection of `maintainWebSocket` (websocket.ts), on `ws`: the handshake, then its
 * messages, pings, credential refreshes, and what ends it (sdks/go/bridge_ws_session.go).
 *
 * Every listener is attached when the socket is created and `onConnect` runs inside the `open` event,
 * so no message can reach the handler before it has its `send`.
 */
import type { Agent } from 'node:http';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import WebSocket from 'ws';
import type { HeldCredential } from './held-credential.ts';
import {
  type BridgeLogger,
  credentialStop,
  type DisconnectReason,
  PermanentConnectionError,
} from './persistent.ts';
import type { TokenResponse } from './types.ts';

/** Sends one message: a string as a text frame, bytes as a binary frame. */
export type SendFunction = (message: string | Uint8Array) => Promise<void>;

/** The events of a maintained WebSocket: per connection, one `onConnect`, its messages, one `onDisconnect`. */
export interface WebSocketHandler {
  /**
   * A connection was established, before its first message. `send` is bound to that connection and
   * may be kept: it resolves once the message was written, rejects with `MessageTooLargeError`
   * (nothing written) above the size limit, or `NotConnectedError` once the connection has ended.
   */
  onConnect?(send: SendFunction): void;
  /** Each message received, in order: text frames as strings, binary frames as bytes. */
  onMessage?(message: string | Uint8Array): void;
  /** The connection ended, after its last message; `error` says why. What a handler throws is logged. */
  onDisconnect?(error: unknown): void;
}

/** A message above the size limit: an outgoing one is refused by `send`, an incoming one ends the connection (1009). */
export class MessageTooLargeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MessageTooLargeError';
  }
}

/** `send` was called after its connection ended. */
export class NotConnectedError extends Error {
  constructor() {
    super('The WebSocket connection has ended.');
    this.name = 'NotConnectedError';
  }
}

/** The peer ended the connection with a close code (1006: no close frame, the connection was lost). */
export class WebSocketCloseError extends Error {
  readonly code: number;
  readonly reason: string;
  constructor(code: number, reason: string) {
    super(
      code === 1006
        ? 'The WebSocket connection was lost (1006).'
        : `The server closed the WebSocket (${code}).`,
    );
    this.name = 'WebSocketCloseError';
    this.code = code;
    this.reason = reason;
  }
}

/**
 * The server refused the credential: a handshake answered 401 or 403, or close code 3000 or 4401. The
 * credential is refreshed before the next attempt.
 */
export class CredentialRefusedError extends Error {
  /** The handshake's status, or 0. */
  readonly status: number;
  /** The close code, or 0. */
  readonly closeCode: number;
  constructor(init: { status?: number; closeCode?: number }) {
    super(
      init.status
        ? `The server refused the credential (handshake answered ${init.status}).`
        : `The server refused the credential (close code ${init.closeCode}).`,
    );
    this.name = 'CredentialRefusedError';
    this.status = init.status ?? 0;
    this.closeCode = init.closeCode ?? 0;
  }
}

/** The connection was closed (1000) to be opened again at once with a refreshed credential. */
export class CredentialRefreshedError extends Error {
  constructor() {
    super('Reconnecting with a refreshed credential.');
    this.name = 'CredentialRefreshedError';
  }
}

/** A handshake the server answered with another status than 101 and not 401/403 (those are refused credentials). */
export class HandshakeError extends Error {
  readonly status: number;
  constructor(status: number) {
    super(`The WebSocket handshake was answered ${status}.`);
    this.name = 'HandshakeError';
    this.status = status;
  }
}

/**
 * Close codes a server sends when it refuses the credential of an open connection: refreshed, then
 * connect again (3000 is "Unauthorized" in the IANA registry of WebSocket close codes; 4401 is
 * graphql-ws's "Unauthorized").
 */
export const UNAUTHORIZED_CLOSE_CODES: ReadonlySet<number> = new Set([3000, 4401]);

export interface SessionOptions {
  maxMessageBytes: number;
  pingIntervalMs: number;
  writeTimeoutMs: number;
  handshakeTimeoutMs: number;
  reauth: ((token: TokenResponse) => string | Uint8Array | Promise<string | Uint8Array>) | undefined;
  reconnectOnRefresh: boolean;
  permanentCloseCodes: ReadonlySet<number>;
  /** TLS settings and the HTTP agent for the handshake. */
  dial: DialOptions;
}

export type DialOptions = Pick<TlsOptions, 'ca' | 'cert' | 'key' | 'servername' | 'rejectUnauthorized'> & {
  agent?: Agent;
};

export interface SessionEnd {
  reason: DisconnectReason;
  error: unknown;
}

interface Context {
  connectionId: string;
  held: HeldCredential;
  token: TokenResponse;
  handler: WebSocketHandler;
  options: SessionOptions;
  signal: AbortSignal;
  log: BridgeLogger;
  fields: Record<string, unknown>;
}

const bytesOf = (m: string | Uint8Array) => (typeof m === 'string' ? Buffer.byteLength(m) : m.byteLength);

/**
 * Calls a handler; what it throws is logged, not thrown into `ws`'s event emitter (where it would be an
 * uncaught exception) nor taken for a failure of the connection.
 */
function callHandler(ctx: Context, name: string, call: () => void) {
  try {
    call();
  } catch (error) {
    ctx.log('error', `the handler's ${name} threw`, { ...ctx.fields, error: String(error) });
  }
}

/**
 * Dials `url` with `headers` (the credential applied) and runs the connection until it ends.
 * Resolves `opened` once upgraded, or rejects it with why the handshake failed (then `ended` is never
 * used); `ended` resolves once the connection is over and `onDisconnect` was called.
 */
export function openSession(
  url: string,
  headers: Record<string, string>,
  ctx: Context,
): { opened: Promise<void>; ended: Promise<SessionEnd> } {
  const { options, handler } = ctx;
  const ws = new WebSocket(url, {
    ...options.dial,
    headers,
    maxPayload: options.maxMessageBytes,
    handshakeTimeout: options.handshakeTimeoutMs,
    followRedirects: false,
    perMessageDeflate: false,
  });
  let opened!: { resolve: () => void; reject: (e: unknown) => void };
  const openedP = new Promise<void>((resolve, reject) => {
    opened = { resolve, reject };
  });
  let finish!: (end: SessionEnd) => void;
  const endedP = new Promise<SessionEnd>((resolve) => {
    finish = resolve;
  });

  let state: 'connecting' | 'open' | 'ended' = 'connecting';
  let handshakeStatus = 0;
  let lastError: unknown;
  /** Set when this side decided to end the connection (it then closes with 1000). */
  let ending: SessionEnd | undefined;
  /** Set when the connection failed on this side (a message too large, no pong). */
  let failure: SessionEnd | undefined;
  const stopRefresh = new AbortController();
  const timers: { ping?: NodeJS.Timeout; alive?: NodeJS.Timeout; close?: NodeJS.Timeout } = {};

  const onAbort = () => {
    if (state === 'connecting') {
      lastError = ctx.signal.reason;
      ws.terminate();
    } else endWith({ reason: 'closed', error: ctx.signal.reason }, 'client closing');
  };
  ctx.signal.addEventListener('abort', onAbort, { once: true });

  // With pings on, silence longer than a ping interval plus the write timeout (no pong, no message)
  // means the peer or the path is gone: the connection is dropped and opened again.
  const alive = () => {
    if (options.pingIntervalMs <= 0) return;
    clearTimeout(timers.alive);
    timers.alive = setTimeout(() => {
      const window = options.pingIntervalMs + options.writeTimeoutMs;
      fail('dropped', new Error(`No pong nor message within ${window} ms.`));
    }, options.pingIntervalMs + options.writeTimeoutMs);
  };

  /** This side ends the connection: a close handshake (RFC 6455 §7.1.2), cut short after a bound. */
  function endWith(end: SessionEnd, text: string) {
    if (state !== 'open' || ending || failure) return;
    ending = end;
    ws.close(1000, text);
    timers.close = setTimeout(() => ws.terminate(), Math.min(options.writeTimeoutMs, 2000));
  }

  function fail(reason: DisconnectReason, error: unknown) {
    if (state !== 'open' || ending || failure) return;
    failure = { reason, error };
    ws.terminate();
  }

  const send: SendFunction = (message) => {
    if (state !== 'open' || ending || failure) return Promise.reject(new NotConnectedError());
    const size = bytesOf(message);
    if (size > options.maxMessageBytes)
      return Promise.reject(
        new MessageTooLargeError(`${size} bytes, the limit is ${options.maxMessageBytes}.`),
      );
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const error = new Error(`A WebSocket write took more than ${options.writeTimeoutMs} ms.`);
        fail('dropped', error);
        reject(error);
      }, options.writeTimeoutMs);
      ws.send(message, { binary: typeof message !== 'string' }, (error) => {
        clearTimeout(timer);
        if (error) reject(state === 'open' ? error : new NotConnectedError());
        else resolve();
      });
    });
  };

  ws.on('unexpected-response', (_req, res) => {
    handshakeStatus = res.statusCode ?? 0;
    res.resume();
    ws.terminate();
  });
  ws.on('error', (error) => {
    lastError = error;
    if ((error as { code?: string }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')
      failure ??= {
        reason: 'too_large',
        error: new MessageTooLargeError(`An incoming message exceeded ${options.maxMessageBytes} bytes.`),
      };
  });
  ws.on('open', () => {
    state = 'open';
    opened.resolve();
    alive();
    if (options.pingIntervalMs > 0)
      timers.ping = setInterval(() => {
        ws.ping(undefined, undefined, (error) => {
          if (error) fail('dropped', error);
        });
      }, options.pingIntervalMs);
    callHandler(ctx, 'onConnect', () => handler.onConnect?.(send));
    void ctx.held.refreshLoop(ctx.token, onFresh, stopRefresh.signal, ctx.log, ctx.fields).then(
      (permanent) =>
        endWith(
          { reason: 'permanent', error: credentialStop(ctx.connectionId, permanent) },
          'credential no longer valid',
        ),
      () => undefined,
    );
  });
  ws.on('pong', alive);
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    if (state !== 'open') return;
    alive();
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    const message = isBinary ? new Uint8Array(bytes) : bytes.toString('utf8');
    callHandler(ctx, 'onMessage', () => handler.onMessage?.(message));
  });
  ws.on('close', (code: number, reason: Buffer) => {
    const wasOpen = state === 'open';
    state = 'ended';
    ctx.signal.removeEventListener('abort', onAbort);
    stopRefresh.abort();
    clearInterval(timers.ping);
    clearTimeout(timers.alive);
    clearTimeout(timers.close);
    if (!wasOpen) return opened.reject(handshakeFailure(handshakeStatus, lastError, ctx));
    const end = ending ?? failure ?? classifyClose(code, reason.toString('utf8'), ctx);
    callHandler(ctx, 'onDisconnect', () => handler.onDisconnect?.(end.error));
    finish(end);
  });

  /** A credential different from the connection's: re-authenticate in band, or reconnect. */
  async function onFresh(token: TokenResponse) {
    const reauth = options.reauth;
    if (reauth) {
      try {
        await send(await reauth(token));
        ctx.log('info', 're-authenticated in band', ctx.fields);
        return;
      } catch (error) {
        ctx.log('warn', 'in-band re-authentication failed; reconnecting', {
          ...ctx.fields,
          error: String(error),
        });
      }
    } else if (!options.reconnectOnRefresh) return;
    endWith({ reason: 'refresh', error: new CredentialRefreshedError() }, 'credential refreshed');
  }

  return { opened: openedP, ended: endedP };
}

/** What a failed handshake means for the loop. */
function handshakeFailure(status: number, error: unknown, ctx: Context): unknown {
  if (ctx.signal.aborted) return ctx.signal.reason;
  if (status === 401 || status === 403) return new CredentialRefusedError({ status });
  if (status === 0 || status === 408 || status === 429 || status >= 500)
    return status === 0 ? error : new HandshakeError(status);
  return new PermanentConnectionError({
    connectionId: ctx.connectionId,
    reason: `handshake answered ${status}`,
    code: 'handshake_refused',
    cause: new HandshakeError(status),
  });
}

/** What a close the peer started (or a lost connection) means for the loop. */
function classifyClose(code: number, reason: string, ctx: Context): SessionEnd {
  const closed = new WebSocketCloseError(code, reason);
  if (ctx.options.permanentCloseCodes.has(code))
    return {
      reason: 'permanent',
      error: new PermanentConnectionError({
        connectionId: ctx.connectionId,
        reason: `close code ${code}`,
        code: 'close_code',
        closeCode: code,
        cause: closed,
      }),
    };
  if (UNAUTHORIZED_CLOSE_CODES.has(code))
    return { reason: 'unauthorized', error: new CredentialRefusedError({ closeCode: code }) };
  return { reason: 'dropped', error: closed };
}
