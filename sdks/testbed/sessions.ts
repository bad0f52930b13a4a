/**
 * What the testbed's long-lived servers (ws-server.ts, grpc-server.ts) share: open sessions whose
 * credential is checked again while they last, and counters per label.
 *
 * A credential is checked when a session opens; a server that only did that would let a stream
 * outlive a revoked grant for hours. So each session keeps the request it was authenticated with
 * (the handshake, the call's metadata, or its last in-band re-auth) and it is checked again:
 * - when its bearer token's testbed expiry passes (`TokenExpiries`: `/connect` with `token_ttl`);
 * - when the control API changes what is valid (`/idp/revoke`, `/idp/expire`) and calls `recheck`.
 * A session whose credential fails is ended by its server as "unauthorized" (WebSocket close 3000,
 * gRPC status UNAUTHENTICATED), which tells the client to refresh before it connects again.
 *
 * A label is the client's own name for what it opened (the WebSocket path after the strategy, the
 * gRPC health request's `service`), so that each test reads counters of its own.
 */
import { createHash } from 'node:crypto';
import type { CheckedRequest, Strategy, TokenExpiries, Verifier } from './upstream.ts';

export interface Session {
  readonly label: string;
  readonly strategy: Strategy;
  /** The request whose credential the session holds now. */
  request: CheckedRequest;
  /** Ends the session because its credential no longer passes (reason: the verifier's). */
  endUnauthorized(reason: string): void;
}

/** The bearer token a request carries, if any. */
export function bearerOf(req: CheckedRequest): string | undefined {
  const auth = req.headers.authorization;
  return typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : undefined;
}

/** A stable fingerprint of the credential material of a request (never the credential itself). */
export function credentialFingerprint(req: CheckedRequest): string {
  const parts = ['authorization', 'x-api-key', 'x-amz-security-token'].map((h) =>
    String(req.headers[h] ?? ''),
  );
  parts.push(req.url.searchParams.get('api_key') ?? '');
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 16);
}

export class SessionBook<S extends Session> {
  readonly #verify: Verifier;
  readonly #expiries: TokenExpiries;
  readonly #open = new Map<S, NodeJS.Timeout | undefined>();
  /** Called when a session is ended as unauthorized (for counters). */
  readonly #onUnauthorized: (session: S) => void;

  constructor(verify: Verifier, expiries: TokenExpiries, onUnauthorized: (session: S) => void) {
    this.#verify = verify;
    this.#expiries = expiries;
    this.#onUnauthorized = onUnauthorized;
  }

  add(session: S): void {
    this.#open.set(session, undefined);
    this.#arm(session);
  }

  remove(session: S): void {
    clearTimeout(this.#open.get(session));
    this.#open.delete(session);
  }

  /** The session now holds the credential of `request` (an in-band re-auth that passed). */
  replace(session: S, request: CheckedRequest): void {
    if (!this.#open.has(session)) return;
    session.request = request;
    this.#arm(session);
  }

  /** Open sessions, those of one label when it is given. */
  matching(label?: string): S[] {
    return [...this.#open.keys()].filter((s) => label === undefined || s.label === label);
  }

  /** Checks every open session's credential again; resolves to how many were ended. */
  async recheck(): Promise<number> {
    const ended = await Promise.all(this.matching().map((s) => this.#check(s)));
    return ended.filter(Boolean).length;
  }

  closeAll(): void {
    for (const timer of this.#open.values()) clearTimeout(timer);
    this.#open.clear();
  }

  /** Schedules a check for when the session's bearer token expires (if the testbed knows when). */
  #arm(session: S): void {
    clearTimeout(this.#open.get(session));
    const token = bearerOf(session.request);
    const at = token === undefined ? undefined : this.#expiries.expiresAt(token);
    const timer =
      at === undefined
        ? undefined
        : setTimeout(() => void this.#check(session), Math.max(0, at - Date.now()) + 5).unref();
    this.#open.set(session, timer);
  }

  async #check(session: S): Promise<boolean> {
    const request = session.request;
    const reason = await this.#verify(session.strategy, request).catch((e: Error) => e.message);
    // The session may have closed, or re-authenticated, while the check ran.
    if (reason === null || !this.#open.has(session) || session.request !== request) return false;
    this.remove(session);
    this.#onUnauthorized(session);
    session.endUnauthorized(reason);
    return true;
  }
}
