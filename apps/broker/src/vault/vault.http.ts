import { ANY_ADDRESS } from '../egress/address-guard.ts';
import { createGuardedFetch, type GuardedFetch } from '../egress/guarded-fetch.ts';
import type { NexusError } from '../errors/nexus-error.ts';
// The secret backends' error catalogue (a leaf: it imports only errors/): Vault failures keep their
// `secret_backend_*` codes whether the secret store or the transit key provider (crypto/transit.ts) called.
import { secretError } from '../modules/secrets/secrets.errors.ts';

/** One answer of the Vault HTTP API, with the `errors` array Vault puts in failures. */
export interface VaultResponse {
  readonly status: number;
  readonly body: unknown;
  readonly errors: string[];
}

export type VaultAuth =
  | { readonly method: 'token'; readonly token: string }
  | {
      readonly method: 'approle';
      readonly roleId: string;
      readonly secretId: string;
      readonly mount?: string;
    }
  | {
      /** Kubernetes auth: the pod's service-account JWT, read from its file at every login (it rotates). */
      readonly method: 'kubernetes';
      readonly role: string;
      readonly readJwt: () => Promise<string>;
      readonly mount?: string;
    };

const RETRY_STATUS = new Set([429, 500, 502, 503, 504]);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const isSealed = (r: VaultResponse) => r.status === 503 && r.errors.some((e) => /sealed/i.test(e));

/** The largest Vault answer read (a long LIST); a longer one fails the call. */
const MAX_ANSWER_BYTES = 32 * 1024 * 1024;

/**
 * The HTTP layer: namespace header, timeouts, retries with backoff on 429/5xx and network errors
 * (never on a sealed answer: waiting does not unseal), and the mapping of failures to stable codes.
 *
 * Egress (see egress/README.md): Vault is operator infrastructure, usually on a private address or
 * a loopback agent, named by `VAULT_ADDR` and nothing else. Its client fetches that origin only,
 * from whatever address the name resolves to (no range is refused: the operator chose it), over
 * connections opened to the address that was resolved and checked; a redirect is never followed,
 * so the token is never sent anywhere but `VAULT_ADDR`.
 */
export class VaultHttp {
  readonly addr: string;
  readonly namespace: string | undefined;
  readonly attempts: number;
  readonly backoffMs: number;
  readonly timeoutMs: number;
  readonly #fetch: GuardedFetch;

  constructor(options: {
    addr: string;
    namespace?: string | undefined;
    attempts: number;
    backoffMs: number;
    timeoutMs: number;
  }) {
    this.addr = options.addr.replace(/\/+$/, '');
    this.namespace = options.namespace === '' ? undefined : options.namespace;
    this.attempts = Math.max(1, options.attempts);
    this.backoffMs = options.backoffMs;
    this.timeoutMs = options.timeoutMs;
    this.#fetch = createGuardedFetch({
      allowCidrs: ANY_ADDRESS,
      origin: this.addr,
      maxRedirects: 0,
      maxResponseBytes: MAX_ANSWER_BYTES,
      timeoutMs: this.timeoutMs,
      keepAlive: true,
    });
  }

  /** Closes the pooled connections. */
  close(): void {
    this.#fetch.close();
  }

  async send(
    method: string,
    url: string,
    options: { token?: string; body?: unknown; rootNamespace?: boolean } = {},
  ): Promise<VaultResponse> {
    const headers: Record<string, string> = {};
    if (options.token !== undefined) headers['x-vault-token'] = options.token;
    if (this.namespace !== undefined && !options.rootNamespace) headers['x-vault-namespace'] = this.namespace;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      if (attempt > 1) await sleep(this.backoffMs * 2 ** (attempt - 2) * (0.5 + Math.random()));
      let response: Response;
      try {
        response = await this.#fetch(`${this.addr}${url}`, {
          method,
          headers,
          ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
          signal: AbortSignal.timeout(this.timeoutMs),
          redirect: 'error',
        });
      } catch (error) {
        lastError = error;
        continue;
      }
      const text = await response.text();
      let body: unknown = null;
      try {
        body = text === '' ? null : JSON.parse(text);
      } catch {
        body = null;
      }
      // Vault and OpenBao send `{"errors": [...]}`; RustyVault sends `{"error": "..."}`.
      const b = (body ?? {}) as { errors?: unknown; error?: unknown };
      const errors = Array.isArray(b.errors)
        ? (b.errors.filter((e) => typeof e === 'string') as string[])
        : typeof b.error === 'string'
          ? [b.error]
          : [];
      const r: VaultResponse = { status: response.status, body, errors };
      if (RETRY_STATUS.has(r.status) && !isSealed(r) && attempt < this.attempts) continue;
      return r;
    }
    const cause = lastError as { cause?: { code?: string }; message?: string };
    throw secretError('secret_backend_unavailable', {
      detail:
        `vault: ${method} ${url}: ${cause?.cause?.code ?? ''} ${cause?.message ?? String(lastError)}`.trim(),
      cause: lastError,
    });
  }

  /** The stable error for an unexpected answer; Vault's own text goes to `detail` only. */
  failure(r: VaultResponse): NexusError {
    const detail = `vault: HTTP ${r.status}: ${r.errors.join('; ').slice(0, 500)}`;
    if (isSealed(r)) return secretError('secret_backend_sealed', { detail });
    if (r.status === 401 || r.status === 403) return secretError('secret_backend_denied', { detail });
    if (r.status === 400 && r.errors.some((e) => e.includes('check-and-set')))
      return secretError('secret_conflict', { detail });
    if (r.status === 429 || r.status >= 500) return secretError('secret_backend_unavailable', { detail });
    return secretError('secret_backend_error', { detail });
  }

  /** Throws `secret_backend_sealed` when the server reports it is sealed (an unauthenticated call). */
  async checkUnsealed(): Promise<void> {
    // A root-namespace endpoint: Vault Enterprise does not serve it inside a namespace.
    const r = await this.send('GET', '/v1/sys/seal-status', { rootNamespace: true });
    if (r.status !== 200) throw this.failure(r);
    if ((r.body as { sealed?: boolean })?.sealed === true)
      throw secretError('secret_backend_sealed', { detail: 'vault: sys/seal-status reports sealed' });
  }
}

export interface VaultSession {
  /** Logs in, or renews the token when two thirds of its TTL have passed. */
  ensureToken(): Promise<string>;
  /**
   * An authenticated request. On 403 with AppRole, when lookup-self shows the token itself is no
   * longer valid (revoked behind our back), logs in again, at most once per token, and retries;
   * a 403 for a valid token (a policy refusal) is answered as it is.
   */
  request(method: string, url: string, body?: unknown): Promise<VaultResponse>;
  close(): void;
}

interface TokenState {
  token: string;
  /** When to renew (ms since epoch); Infinity for a token without TTL. */
  renewAt: number;
  /** When the lease ends (ms since epoch); Infinity for a token without TTL. */
  expiresAt: number;
  renewable: boolean;
}

/**
 * Token lifecycle. A static token is looked up once (TTL, renewable) and renewed with
 * `renew-self` before it expires; an AppRole or Kubernetes login is renewed the same way, and when
 * renewal fails (max TTL reached, token revoked) the broker logs in again (role and secret ids, or
 * the service-account JWT as it is now).
 */
export function createVaultSession(http: VaultHttp, auth: VaultAuth, now: () => number): VaultSession {
  let state: TokenState | undefined;
  let pending: Promise<string> | undefined;

  /** Tokens whose 403 has already led to a new login: one per token, never a login storm. */
  const replaced = new Set<string>();

  const schedule = (token: string, ttlSeconds: number, renewable: boolean): TokenState => ({
    token,
    renewAt: ttlSeconds > 0 ? now() + (ttlSeconds * 1000 * 2) / 3 : Number.POSITIVE_INFINITY,
    expiresAt: ttlSeconds > 0 ? now() + ttlSeconds * 1000 : Number.POSITIVE_INFINITY,
    renewable,
  });

  /** A login (AppRole, Kubernetes) that replaces `old`: the old token is revoked (best effort), not left to expire. */
  async function relogin(old: TokenState): Promise<TokenState> {
    const next = await login();
    if (old.token !== next.token && now() < old.expiresAt)
      await http.send('POST', '/v1/auth/token/revoke-self', { token: old.token, body: {} }).catch(() => {});
    return next;
  }

  /** Whether the server still knows `token` (lookup-self); only a 401/403 means it does not. */
  async function tokenValid(token: string): Promise<boolean> {
    const r = await http.send('GET', '/v1/auth/token/lookup-self', { token });
    return r.status !== 401 && r.status !== 403;
  }

  async function login(): Promise<TokenState> {
    if (auth.method === 'token') {
      const r = await http.send('GET', '/v1/auth/token/lookup-self', { token: auth.token });
      if (r.status !== 200) throw http.failure(r);
      const data = (r.body as { data?: { ttl?: number; renewable?: boolean } }).data ?? {};
      return schedule(auth.token, Number(data.ttl ?? 0), data.renewable === true);
    }
    const kubernetes = auth.method === 'kubernetes';
    const label = kubernetes ? 'Kubernetes' : 'AppRole';
    let body: Record<string, string>;
    if (kubernetes) {
      let jwt: string;
      try {
        jwt = (await auth.readJwt()).trim();
      } catch {
        throw secretError('secret_backend_denied', {
          detail: 'vault: Kubernetes login: the service-account token file cannot be read',
        });
      }
      body = { role: auth.role, jwt };
    } else body = { role_id: auth.roleId, secret_id: auth.secretId };
    const r = await http.send(
      'POST',
      `/v1/auth/${auth.mount ?? (kubernetes ? 'kubernetes' : 'approle')}/login`,
      {
        body,
      },
    );
    // Vault answers a wrong role or credential with 400 (AppRole) or 403 (Kubernetes, TokenReview refused).
    if (r.status === 400 || (kubernetes && r.status === 403))
      throw secretError('secret_backend_denied', { detail: `vault: ${label} login: ${r.errors.join('; ')}` });
    if (r.status !== 200) throw http.failure(r);
    const a = (r.body as { auth?: { client_token?: string; lease_duration?: number; renewable?: boolean } })
      .auth;
    if (typeof a?.client_token !== 'string')
      throw secretError('secret_backend_error', { detail: `vault: ${label} login answered without a token` });
    return schedule(a.client_token, Number(a.lease_duration ?? 0), a.renewable === true);
  }

  async function renew(current: TokenState): Promise<TokenState> {
    if (auth.method !== 'token' && now() >= current.expiresAt) return login();
    if (current.renewable) {
      const r = await http.send('POST', '/v1/auth/token/renew-self', { token: current.token, body: {} });
      const a = (r.body as { auth?: { lease_duration?: number; renewable?: boolean } })?.auth;
      if (r.status === 200 && a !== undefined)
        return schedule(current.token, Number(a.lease_duration ?? 0), a.renewable === true);
      if (auth.method === 'token') {
        if (r.status === 403) throw http.failure(r);
        // A transient failure: keep the token until it really expires.
        return { ...current, renewAt: now() + 1000 };
      }
      // AppRole or Kubernetes, renew-self refused (a policy without it): the token still works;
      // keep it until it expires, then log in again.
      if (r.status === 403) return { ...current, renewAt: current.expiresAt };
    } else if (auth.method === 'token') {
      // Not renewable and no way to log in again: use it until the server refuses it.
      return { ...current, renewAt: Number.POSITIVE_INFINITY };
    }
    return relogin(current);
  }

  function refresh(run: () => Promise<TokenState>): Promise<string> {
    pending ??= run()
      .then((next) => {
        state = next;
        return next.token;
      })
      .finally(() => {
        pending = undefined;
      });
    return pending;
  }

  async function ensureToken(): Promise<string> {
    if (pending) return pending;
    const current = state;
    if (current === undefined) return refresh(login);
    if (now() >= current.renewAt) return refresh(() => renew(current));
    return current.token;
  }

  return {
    ensureToken,
    async request(method, url, body) {
      const token = await ensureToken();
      const r = await http.send(method, url, { token, ...(body === undefined ? {} : { body }) });
      if (r.status !== 403 || auth.method === 'token') return r;
      const current = state;
      let fresh: string;
      if (current !== undefined && current.token !== token)
        fresh = current.token; // replaced meanwhile
      else {
        if (current === undefined || replaced.has(token) || (await tokenValid(token))) return r;
        replaced.add(token);
        fresh = await refresh(() => relogin(current));
      }
      return http.send(method, url, { token: fresh, ...(body === undefined ? {} : { body }) });
    },
    close() {
      state = undefined;
      replaced.clear();
    },
  };
}
