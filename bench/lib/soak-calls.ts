/**
 * The soak bench's calls, one function per kind, each recording its outcome. Connection calls go
 * to a random current connection on a random replica; a refusal for a connection that a consent
 * superseded meanwhile is `expected`, not an error. Every access token the broker hands out (in a
 * token answer, or to the upstream behind the proxy) is checked against what the provider issued.
 */
import type { OidcFixture } from '../../apps/broker/test/oidc-fixture.ts';
import type { Kind, KindRecorder } from './soak-series.ts';
import { type TokenTap, tokenDigest } from './token-tap.ts';

export interface SoakWorld {
  readonly bases: readonly string[];
  readonly adminKey: string;
  readonly provider: string;
  readonly returnUrl: string;
  readonly idp: OidcFixture;
  readonly tap: TokenTap;
  rec: KindRecorder;
  readonly timeoutMs: number;
  /** workspace → its current (active) connection. */
  readonly current: Map<string, string>;
  /** connection id → when a consent began superseding it. */
  readonly superseded: Map<string, number>;
  /** connection id → [activated, superseded or undefined], for the refresh budget. */
  readonly lifetimes: Map<string, [number, number | undefined]>;
  /** connection id → the provider's grant chain it holds (bench/lib/token-tap.ts). */
  readonly chainOf: Map<string, number>;
  /** Digests of the access tokens explicit refreshes answered with: not bound by the schedule. */
  readonly explicitTokens: Set<string>;
  /** `${workspace}/${name}` → the value stored. */
  readonly secrets: Map<string, string>;
  /** Successful explicit refreshes (each one may cost a provider call). */
  explicitRefreshes: number;
}

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;

function errorCode(text: string): string {
  try {
    const body = JSON.parse(text) as { error?: unknown };
    return typeof body.error === 'string' ? body.error : '';
  } catch {
    return '';
  }
}

/** A call's failure, or undefined when it went as expected. */
type Failed =
  | { outcome: 'expected' | 'server_error' | 'unexpected' | 'bad_token'; what: string; example?: string }
  | undefined;

async function timed(w: SoakWorld, kind: Kind, run: () => Promise<Failed>): Promise<void> {
  const started = performance.now();
  try {
    const failed = await run();
    const ms = performance.now() - started;
    if (failed) w.rec.record(kind, failed.outcome, ms, failed.what, failed.example);
    else w.rec.record(kind, 'ok', ms);
  } catch (error) {
    const ms = performance.now() - started;
    const e = error as Error & { cause?: { code?: string } };
    const what = e.name === 'TimeoutError' ? 'timeout' : (e.cause?.code ?? e.name ?? 'error');
    w.rec.record(kind, 'unexpected', ms, what, String(e.message));
  }
}

function failureOf(w: SoakWorld, id: string | undefined, status: number, text: string) {
  const what = `${status} ${errorCode(text)}`.trim();
  if (id !== undefined && w.superseded.has(id))
    return { outcome: 'expected' as const, what: `${what} (superseded)` };
  return {
    outcome: status >= 500 ? ('server_error' as const) : ('unexpected' as const),
    what,
    example: text,
  };
}

function tokenCheck(w: SoakWorld, token: unknown, id: string, at: number) {
  if (typeof token !== 'string') return { outcome: 'unexpected' as const, what: 'no access_token' };
  const state = w.tap.tokenState(token, at);
  if (state === 'valid') return undefined;
  // A token of a connection superseded meanwhile may be older than the provider's memory of it.
  if (w.superseded.has(id)) return undefined;
  return {
    outcome: 'bad_token' as const,
    what: `${state} access token handed out`,
    example: `connection ${id}`,
  };
}

function randomConnection(w: SoakWorld): string {
  return pick([...w.current.values()]);
}

async function get(w: SoakWorld, url: string, headers: Record<string, string> = {}, method = 'GET') {
  const response = await fetch(url, {
    method,
    headers: { 'x-api-key': w.adminKey, ...headers },
    signal: AbortSignal.timeout(w.timeoutMs),
  });
  return { status: response.status, text: await response.text() };
}

/** GET /v1/token/{id}: 200 with an access token the provider issued and that has not expired. */
export function tokenRead(w: SoakWorld): Promise<void> {
  return timed(w, 'token', async () => {
    const id = randomConnection(w);
    const { status, text } = await get(w, `${pick(w.bases)}/v1/token/${id}`);
    if (status !== 200) return failureOf(w, id, status, text);
    return tokenCheck(w, (JSON.parse(text) as { access_token?: unknown }).access_token, id, Date.now());
  });
}

/** POST /v1/refresh/{id}: a forced refresh, 200 with a fresh token. */
export function explicitRefresh(w: SoakWorld): Promise<void> {
  return timed(w, 'refresh', async () => {
    const id = randomConnection(w);
    const { status, text } = await get(w, `${pick(w.bases)}/v1/refresh/${id}`, {}, 'POST');
    if (status !== 200) return failureOf(w, id, status, text);
    w.explicitRefreshes++;
    const token = (JSON.parse(text) as { access_token?: unknown }).access_token;
    if (typeof token === 'string') w.explicitTokens.add(tokenDigest(token));
    return tokenCheck(w, token, id, Date.now());
  });
}

/**
 * A proxied GET through /proxy/<provider>/…: the no-op upstream answers 200 with what it thought of
 * the bearer token it received (`token: valid|expired|unknown|none`).
 */
export function proxied(w: SoakWorld): Promise<void> {
  return timed(w, 'proxy', async () => {
    const id = randomConnection(w);
    const { status, text } = await get(w, `${pick(w.bases)}/proxy/${w.provider}/items?limit=3`, {
      'x-nexus-connection-id': id,
    });
    if (status !== 200) return failureOf(w, id, status, text);
    const seen = (JSON.parse(text) as { token?: string }).token;
    if (seen === 'valid' || w.superseded.has(id)) return;
    return {
      outcome: 'bad_token',
      what: `upstream received a ${seen} bearer token`,
      example: `connection ${id}`,
    };
  });
}

/** GET /api/v2/secrets/{name}: 200 with the value stored at set-up. */
export function secretRead(w: SoakWorld): Promise<void> {
  return timed(w, 'secret', async () => {
    const [key, value] = pick([...w.secrets]);
    const [user, name] = key.split('/') as [string, string];
    const { status, text } = await get(
      w,
      `${pick(w.bases)}/api/v2/secrets/${name}?user_id=${encodeURIComponent(user)}`,
    );
    if (status !== 200) return failureOf(w, undefined, status, text);
    if ((JSON.parse(text) as { value?: string }).value !== value)
      return { outcome: 'unexpected', what: 'wrong secret value', example: key };
  });
}

/**
 * A whole consent: request-connection, the provider's own login and consent pages, the broker's
 * /auth/callback answering 302 to the return URL with status=success, and the agent's first token
 * read of the new connection (which also tells which grant chain it holds). The workspace's
 * previous connection is superseded by the new one.
 */
export function consent(w: SoakWorld, workspace: string): Promise<void> {
  return timed(w, 'consent', async () => {
    const base = pick(w.bases);
    const started = await fetch(`${base}/v1/request-connection`, {
      method: 'POST',
      headers: { 'x-api-key': w.adminKey, 'content-type': 'application/json' },
      body: JSON.stringify({ user_id: workspace, provider_name: w.provider, return_url: w.returnUrl }),
      signal: AbortSignal.timeout(w.timeoutMs),
    });
    const startText = await started.text();
    if (started.status !== 200)
      return failureOf(w, undefined, started.status, `request-connection: ${startText}`);
    const { authUrl, connection_id: id } = JSON.parse(startText) as {
      authUrl: string;
      connection_id: string;
    };
    const callback = await w.idp.consent(authUrl, workspace);
    const old = w.current.get(workspace);
    // From here a call for the old connection may be refused: it is being superseded.
    if (old !== undefined) w.superseded.set(old, Date.now());
    const back = await fetch(callback, { redirect: 'manual', signal: AbortSignal.timeout(w.timeoutMs) });
    const backText = await back.text();
    const location = back.headers.get('location');
    const outcome = location === null ? null : new URL(location).searchParams;
    if (back.status !== 302 || outcome?.get('status') !== 'success' || outcome.get('connection_id') !== id) {
      if (old !== undefined) w.superseded.delete(old);
      if (back.status >= 500) return failureOf(w, undefined, back.status, `callback: ${backText}`);
      return { outcome: 'unexpected', what: `callback ${back.status}`, example: location ?? backText };
    }
    const at = Date.now();
    w.current.set(workspace, id);
    w.lifetimes.set(id, [at, undefined]);
    const life = old === undefined ? undefined : w.lifetimes.get(old);
    if (life) life[1] = at;
    const first = await get(w, `${base}/v1/token/${id}`);
    if (first.status !== 200) return failureOf(w, id, first.status, `first token read: ${first.text}`);
    const token = (JSON.parse(first.text) as { access_token?: unknown }).access_token;
    const chain = typeof token === 'string' ? w.tap.chainOf(token) : undefined;
    if (chain !== undefined) w.chainOf.set(id, chain);
    return tokenCheck(w, token, id, Date.now());
  });
}
