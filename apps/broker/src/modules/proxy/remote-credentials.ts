import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { commonError } from '../../errors/common.errors.ts';
import { NexusError } from '../../errors/nexus-error.ts';
import type { ConnectionRef, CredentialSource, ProxyCredential } from './proxy.ts';

/**
 * Credentials for the standalone `nexus proxy`, from a broker over HTTP. Two identities take part:
 * - the caller (an agent or an admin key, presented to the proxy as to the broker): the broker
 *   decides whether it may use the connection (`GET /v1/check-connection/{id}`, the same check as
 *   the token route), so knowing a connection id is not enough, unlike the original sidecar;
 * - the proxy's own agent credential: it fetches and refreshes the token, which never leaves the
 *   proxy. The broker audits both.
 * Tokens are cached for TOKEN_CACHE_TTL (never past their expiry); refreshes are single-flight.
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
/** A caller's permission is re-checked with the broker at least this often (revocations take effect). */
const CALLER_CHECK_MAX_MS = 30_000;
const MAX_ENTRIES = 10_000;

/** When a caller's bearer token (a JWT) expires; undefined for admin keys or opaque tokens. */
function tokenExpiry(caller: RemoteCaller): number | undefined {
  if (caller.header.name !== 'authorization') return undefined;
  const payload = caller.header.value.slice(7).split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString()) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export function createRemoteCredentials(options: RemoteCredentialOptions): CredentialSource<RemoteCaller> {
  const now = options.now ?? Date.now;
  const tokens = new Map<string, { value: ProxyCredential; until: number }>();
  const allowed = new Map<string, number>();
  const inflight = new Map<string, Promise<ProxyCredential>>();
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

  /** How long a caller's yes stays cached: short, and never past the caller's own token. */
  const callerUntil = (caller: RemoteCaller) =>
    Math.min(
      now() + Math.min(options.cacheTtlMs, CALLER_CHECK_MAX_MS),
      tokenExpiry(caller) ?? Number.POSITIVE_INFINITY,
    );
  const remember_ = (key: string, until: number) => {
    allowed.set(key, until);
    if (allowed.size > MAX_ENTRIES) allowed.delete(allowed.keys().next().value!);
  };

  const callerKey = (caller: RemoteCaller, id: string) =>
    `${createHash('sha256').update(caller.header.value).digest('base64url')}:${id}`;

  /** The caller may use the connection: asked of the broker with the caller's own credential. */
  async function checkCaller(caller: RemoteCaller, ref: ConnectionRef): Promise<string> {
    const auth = { [caller.header.name]: caller.header.value };
    if (!('connectionId' in ref)) {
      const query = new URLSearchParams({ workspace_id: ref.workspaceId, provider_name: ref.providerName });
      const resolved = await call<{ connection_id: string }>('GET', `/v1/resolve?${query}`, auth);
      remember_(callerKey(caller, resolved.connection_id), callerUntil(caller));
      return resolved.connection_id;
    }
    const key = callerKey(caller, ref.connectionId);
    if ((allowed.get(key) ?? 0) > now()) return ref.connectionId;
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
    remember_(key, callerUntil(caller));
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
  };
}
