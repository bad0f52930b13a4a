/**
 * `@nexus-broker/connect`: opens a Nexus hosted connect session (the `url` that
 * `POST /v1/connect-sessions` answered, created by your server) in a popup, and resolves with the
 * new connection's id once the user has connected an account.
 *
 * The broker's last page posts the outcome to this window, addressed to the session's return_url
 * origin; this side accepts only a message from the popup it opened and from the broker's origin
 * (the origin of `url`). No dependencies, nothing stored, nothing sent anywhere else.
 */

/**
 * Why no connection came back:
 * - `closed`: the user closed the popup before finishing;
 * - `denied`: the user refused consent at the provider, or cancelled on the broker's page;
 * - `expired`: the session (or the sign-in link) had expired or was already used: create a new one;
 * - `failed`: the connection failed for another reason (`code` says which, e.g. `token_exchange_failed`);
 * - `blocked`: the browser did not open the popup (call `openConnect` from a click handler).
 */
export type ConnectErrorReason = 'closed' | 'denied' | 'expired' | 'failed' | 'blocked';

export class ConnectError extends Error {
  readonly reason: ConnectErrorReason;
  /** The broker's error code (`access_denied`, `session_expired`, …); absent for `closed` and `blocked`. */
  readonly code: string | undefined;

  constructor(reason: ConnectErrorReason, code?: string) {
    super(code === undefined ? `connect ${reason}` : `connect ${reason}: ${code}`);
    this.name = 'ConnectError';
    this.reason = reason;
    this.code = code;
  }
}

export interface ConnectResult {
  /** The new connection's id: your server reads its token with it (`GET /v1/token/{id}`). */
  readonly connectionId: string;
  /** The provider's name, as the broker knows it. */
  readonly provider: string;
}

export interface OpenConnectOptions {
  /** The session's `url` from `POST /v1/connect-sessions`. */
  readonly url: string;
  /** Popup size in CSS pixels (default 500 × 700); centred on the current window. */
  readonly width?: number;
  readonly height?: number;
  /** Aborting closes the popup and rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** How often the popup is checked for having been closed. */
const CLOSED_POLL_MS = 300;
const REASONS: readonly ConnectErrorReason[] = ['denied', 'expired', 'failed'];

/**
 * Opens the session in a popup; resolves with the connection id, or rejects with a `ConnectError`.
 * Call it from a user gesture (a click), or the browser blocks the popup (`blocked`).
 */
export function openConnect(options: OpenConnectOptions): Promise<ConnectResult> {
  let target: URL;
  try {
    target = new URL(options.url, window.location.href);
  } catch {
    return Promise.reject(new TypeError('openConnect: url is not a valid URL'));
  }
  if (target.protocol !== 'https:' && target.protocol !== 'http:')
    return Promise.reject(new TypeError('openConnect: url must be an http(s) URL'));
  if (options.signal?.aborted) return Promise.reject(options.signal.reason);
  const width = options.width ?? 500;
  const height = options.height ?? 700;
  const left = Math.max(0, Math.round(window.screenX + (window.outerWidth - width) / 2));
  const top = Math.max(0, Math.round(window.screenY + (window.outerHeight - height) / 2));
  const popup = window.open(
    target.href,
    '_blank',
    `popup=yes,width=${width},height=${height},left=${left},top=${top}`,
  );
  if (popup === null) return Promise.reject(new ConnectError('blocked'));
  const brokerOrigin = target.origin;

  return new Promise<ConnectResult>((resolve, reject) => {
    let done = false;
    const finish = () => {
      done = true;
      window.removeEventListener('message', onMessage);
      clearInterval(poll);
      options.signal?.removeEventListener('abort', onAbort);
      if (!popup.closed) popup.close();
    };
    function onMessage(event: MessageEvent): void {
      // Strict: the broker's origin, from the popup this call opened, in the broker's shape.
      if (done || event.origin !== brokerOrigin || event.source !== popup) return;
      const data: unknown = event.data;
      if (typeof data !== 'object' || data === null) return;
      const m = data as Record<string, unknown>;
      if (m.type !== 'nexus-connect') return;
      if (m.status === 'success' && typeof m.connection_id === 'string') {
        finish();
        resolve({
          connectionId: m.connection_id,
          provider: typeof m.provider === 'string' ? m.provider : '',
        });
      } else if (m.status === 'failed') {
        finish();
        const reason = REASONS.find((r) => r === m.reason) ?? 'failed';
        reject(new ConnectError(reason, typeof m.error === 'string' ? m.error : undefined));
      }
    }
    function onAbort(): void {
      if (done) return;
      finish();
      reject(options.signal?.reason);
    }
    window.addEventListener('message', onMessage);
    options.signal?.addEventListener('abort', onAbort);
    const poll = setInterval(() => {
      if (done || !popup.closed) return;
      finish();
      reject(new ConnectError('closed'));
    }, CLOSED_POLL_MS);
  });
}
