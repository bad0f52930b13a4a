import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { commonError } from '../../errors/common.errors.ts';
import { NexusError } from '../../errors/nexus-error.ts';
import type { ConnectionRef, CredentialSource, ProxyCredential } from './proxy.ts';

/**
 * Credentials for the standalone `nexus proxy`, from a broker over HTTP. Two identities take part:
 * - the caller (an agent or an admin key, presented to the proxy as to the broker): on every call
 *   the broker decides whether it may use the connection and whether the connection is still
 *   active (`GET /v1/check-connection/{id}`, the same check as the token route), so knowing a
 *   connection id is not enough, unlike the original sidecar, and a revocation takes effect at once;
 * - the proxy's own agent credential: it fetches and refreshes the token, which never leaves the
 *   proxy. The broker audits both.
 * Tokens are cached for TOKEN_CACHE_TTL (never past their expiry), and used only for a connection
 * the broker has just called active; refreshes are single-flight.
 */
export interface RemoteCaller {
  /** The caller's credential header, as presented: `authorization` or `x-api-key`. */
  readonly header: { name: 'authorization' | 'x-api-key'; value: string };
}

export function callerOf(headers: IncomingHttpHeaders): RemoteCaller {
  const auth = headers.authorization;
  if (typeof auth === 'string' && /^Bearer \S+$/i.test(auth) && auth.length <= 8192)
    return { header: { name: 'authorization', value: auth } };
  const key = headers['x-api-key'];
  if (typeof key === 'string' && key.length > 0 && key.length <= 512)
    return { header: { name: 'x-api-key', value: key } };
  throw commonError('unauthorized', {
    message:
      'Authenticate to the proxy as to the broker: an agent token in Authorization: Bearer, or X-API-Key.',
  });
}

export interface RemoteCredentialOptions {
  readonly brokerUrl: URL;
  /** The proxy's own credential: agent client credentials, or an API key. */
  readonly own: { clientId: string; clientSecret: string } | { apiKey: string };
  readonly cacheTtlMs: number;
  readonly timeoutMs: number;
  readonly now?: () => number;
}

interface BrokerError {
  error?: string;
  message?: string;
  details?: unknown;
}

const EXPIRY_SKEW_MS = 30_000;

/**
 * `ask` for `key`, with the calls of one moment sharing one broker request, but never a request
 * sent before they came: a call that finds one on its way waits for the next, which is sent when
 * that one ends and answers every call that came meanwhile. Nothing is remembered, so each answer
 * is read after every call it answers was made (a revocation before a call is seen by that call).
 */
function freshlyAsked<T>(): (key: string, ask: () => Promise<T>) => Promise<T> {
  const slots = new Map<string, { running: Promise<T>; next?: Promise<T> }>();
  const start = (key: string, ask: () => Promise<T>) => {
    const slot: { running: Promise<T>; next?: Promise<T> } = { running: ask() };
    slots.set(key, slot);
    const settled = () => {
      if (slots.get(key) === slot && slot.next === undefined) slots.delete(key);
    };
    slot.running.then(settled, settled);
    return slot.running;
  };
  return (key, ask) => {
    const slot = slots.get(key);
    if (slot === undefined) return start(key, ask);
    slot.next ??= slot.running.then(
      () => start(key, ask),
      () => start(key, ask),
    );
    return slot.next;
  };
}

export function createRemoteCredentials(options: RemoteCredentialOptions): CredentialSource<RemoteCaller> & {
  /** For an answer still streaming: whether the broker still lets the caller use the connection. */
  stillAllowed(caller: RemoteCaller, connectionId: string): Promise<boolean>;
} {
  const now = options.now ?? Date.now;
  const tokens = new Map<string, { value: ProxyCredential; until: number }>();
  const inflight = new Map<string, Promise<ProxyCredential>>();
  const checks = freshlyAsked<string>();
  let session: { token: string; until: number } | undefined;

  async function call<T>(method: string, path: string, auth: Record<string, string>): Promise<T> {
    let res: Response;
    try {
      res = await fetch(new URL(path, options.brokerUrl), {
        method,
        headers: { accept: 'application/json', ...auth },
        signal: AbortSignal.timeout(options.timeoutMs),
      });
    } catch {
      throw new NexusError(
        'token_fetch_failed',
        502,
        'The broker could not be reached; nothing was sent upstream.',
      );
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = text === '' ? {} : JSON.parse(text);
    } catch {
      body = {};
    }
    if (res.ok) return body as T;
    const b = body as BrokerError;
    // The broker's 4xx answers (unknown connection, attention_required, …) reach the caller as they are.
    if (res.status < 500 && typeof b.error === 'string')
      throw new NexusError(b.error, res.status, b.message ?? 'Refused by the broker.', {
        details: b.details,
      });
    throw new NexusError(
      'token_fetch_failed',
      502,
      'The broker failed to provide the credential; retry later.',
      {
        detail: `broker answered ${res.status}`,
      },
    );
  }

  let loggingIn: Promise<void> | undefined;
  async function ownAuth(): Promise<Record<string, string>> {
    if ('apiKey' in options.own) return { 'x-api-key': options.own.apiKey };
    if (session === undefined || session.until <= now()) {
      loggingIn ??= login().finally(() => {
        loggingIn = undefined;
      });
      await loggingIn;
    }
    return { authorization: `Bearer ${session!.token}` };
  }

  /** Client-credentials login of the proxy's own agent (one at a time). */
  async function login(): Promise<void> {
    if ('apiKey' in options.own) return;
    const res = await fetch(new URL('/oauth/token', options.brokerUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: options.own.clientId,
        client_secret: options.own.clientSecret,
      }),
      signal: AbortSignal.timeout(options.timeoutMs),
    }).catch(() => undefined);
    const body = (await res?.json().catch(() => ({}))) as { access_token?: string; expires_in?: number };
    if (res === undefined || !res.ok || typeof body.access_token !== 'string')
      throw new NexusError(
        'token_fetch_failed',
        502,
        "The proxy could not log in to the broker with its agent credential; check the proxy's NEXUS_CLIENT_ID and NEXUS_CLIENT_SECRET.",
        { detail: `login answered ${res?.status ?? 'no response'}` },
      );
    const ttl = Math.max(10, (body.expires_in ?? 300) - 30) * 1000;
    session = { token: body.access_token, until: now() + ttl };
  }

  /** A call with the proxy's own credential; a 401 (its token revoked early) logs in again once. */
  async function callOwn<T>(method: string, path: string): Promise<T> {
    try {
      return await call<T>(method, path, await ownAuth());
    } catch (error) {
      if (!(error instanceof NexusError) || error.status !== 401 || 'apiKey' in options.own) throw error;
      session = undefined;
      return call<T>(method, path, await ownAuth());
    }
  }

  /**
   * The caller may use the connection, and it is active: asked of the broker with the caller's
   * own credential for every call, never remembered (a revoked grant or connection takes effect at
   * once, cached token or not); concurrent calls of one caller share a request (`freshlyAsked`).
   * `check-connection` reads no credential at the broker.
   */
  function checkCaller(caller: RemoteCaller, ref: ConnectionRef): Promise<string> {
    const who = createHash('sha256').update(caller.header.value).digest('base64url');
    const what = 'connectionId' in ref ? ref.connectionId : `${ref.workspaceId}\n${ref.providerName}`;
    return checks(`${caller.header.name}:${who}:${what}`, () => askBroker(caller, ref));
  }

  async function askBroker(caller: RemoteCaller, ref: ConnectionRef): Promise<string> {
    const auth = { [caller.header.name]: caller.header.value };
    if (!('connectionId' in ref)) {
      // The user's newest active connection of the provider.
      const query = new URLSearchParams({ workspace_id: ref.workspaceId, provider_name: ref.providerName });
      return (await call<{ connection_id: string }>('GET', `/v1/resolve?${query}`, auth)).connection_id;
    }
    const { status } = await call<{ status: string }>(
      'GET',
      `/v1/check-connection/${encodeURIComponent(ref.connectionId)}`,
      auth,
    );
    // A connection revoked or broken since its token was cached is not used with that token.
    if (status !== 'active') {
      tokens.delete(ref.connectionId);
      throw status === 'attention_required'
        ? new NexusError('attention_required', 409, 'The user must reconnect this account.', {
            details: { connection_id: ref.connectionId, status },
          })
        : new NexusError('connection_not_active', 409, `The connection is ${status}.`, {
            details: { connection_id: ref.connectionId, status },
          });
    }
    return ref.connectionId;
  }

  function remember(value: ProxyCredential & { expires_at?: string | null }): ProxyCredential {
    const expires = value.expires_at
      ? Date.parse(value.expires_at) - EXPIRY_SKEW_MS
      : Number.POSITIVE_INFINITY;
    tokens.set(value.connection_id, { value, until: Math.min(now() + options.cacheTtlMs, expires) });
    if (tokens.size > 10_000) tokens.delete(tokens.keys().next().value!);
    return value;
  }

  function once(key: string, run: () => Promise<ProxyCredential>): Promise<ProxyCredential> {
    const running = inflight.get(key);
    if (running !== undefined) return running;
    const started = run().finally(() => inflight.delete(key));
    inflight.set(key, started);
    return started;
  }

  return {
    async token(caller, ref) {
      const id = await checkCaller(caller, ref);
      const cached = tokens.get(id);
      if (cached !== undefined && cached.until > now()) return cached.value;
      return once(`token:${id}`, async () =>
        remember(await callOwn('GET', `/v1/token/${encodeURIComponent(id)}`)),
      );
    },
    async refresh(caller, id) {
      await checkCaller(caller, { connectionId: id });
      tokens.delete(id);
      return once(`refresh:${id}`, async () =>
        remember(await callOwn('POST', `/v1/refresh/${encodeURIComponent(id)}`)),
      );
    },
    async stillAllowed(caller, id) {
      try {
        await checkCaller(caller, { connectionId: id });
        return true;
      } catch (error) {
        // Refused by the broker (revoked, not active, outside the grant, the caller's token no
        // longer valid): no. The broker unreachable or failing: not known, so the answer goes on.
        if (error instanceof NexusError && error.status < 500 && error.status !== 429) return false;
        throw error;
      }
    },
  };
}
