import type { StoredProfile } from './providers.schemas.ts';

/**
 * How a provider's token endpoint departs from RFC 6749 §5, and how its answers are put back into
 * the standard form before oauth4webapi (which reads strict JSON only) sees them (decision 0015:
 * quirks are settings, not per-provider code). Every request of the provider's OAuth client goes
 * through `tolerantFetch`; the settings come from `params.token_response`
 * (quirk-params.validate.ts checks them).
 *
 * For every provider, whatever its settings:
 * - a form-encoded answer (`application/x-www-form-urlencoded`: GitHub when `Accept:
 *   application/json` is ignored) is read as a JSON object; media types are compared without
 *   regard to case, and a token endpoint's JSON answer under another type (`text/plain`) is read;
 * - `expires_in` given as a numeric string (`"3600"`) becomes a number; `null` or `""` is treated
 *   as absent (the token's lifetime is unknown, as when it is missing), a negative one as 0;
 * - in a successful token answer, a missing or unknown `token_type` is bearer, and a `scope` that
 *   is not text or a `refresh_token` that is not a non-empty string is absent: the answer, and
 *   the rotated refresh token in it, is kept rather than refused;
 * - an `id_token` in a refresh answer is removed (nothing reads it there);
 * - a granted `scope` given as a JSON array of strings (Twitch) is stored space-separated (§3.3);
 * - a 200 answer with a string `error` and no `access_token` is an OAuth error answer (§5.2) and
 *   passed on as a 400 (GitHub's `bad_refresh_token`; connections/refresh-classify.ts reads it);
 * - with `dropIdToken`, an `id_token` is removed before anything parses it (id-token-trust.ts).
 *
 * Only with a setting, and only for answers of the token endpoint:
 * - `form_encoded`: a body that is not JSON is read as a form whatever its content type says;
 * - `error_with_200`: any 200 answer with an `error` field, or with `ok: false` (Slack), is an
 *   error answer, even when it also carries a token;
 * - `tokens_at`: the token fields (`access_token`, `refresh_token`, `expires_in`, `scope`,
 *   `token_type`) are taken from that object (Slack: `authed_user`, the user's token, not the
 *   bot's at the top level) when the answer has it with an `access_token`; an answer without it
 *   (Slack answers a user token's refresh at the top level) is read as it is (its `token_type`,
 *   Slack's `user`, is a bearer token, as above);
 * - `scope_separator: ","`: the granted `scope` is stored space-separated (RFC 6749 §3.3), so
 *   that it compares with the requested scopes.
 */
export interface TokenAnswerQuirks {
  readonly formEncoded: boolean;
  readonly tokensAt: readonly string[] | undefined;
  readonly scopeSeparator: ' ' | ',';
  readonly errorWith200: boolean;
}

/** The fields of a token answer that `tokens_at` moves to the top level. */
const TOKEN_FIELDS = ['access_token', 'refresh_token', 'expires_in', 'scope', 'token_type'] as const;
/** `token_type` values oauth4webapi accepts (RFC 6750, RFC 9449); others are read as bearer. */
const KNOWN_TOKEN_TYPES = new Set(['bearer', 'dpop']);

/** Statuses whose Response has no body (a copy with one cannot be constructed). */
const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

type Body = Record<string, unknown>;

const isObject = (v: unknown): v is Body => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The provider's `params.token_response`, read into settings (validated when it was stored). */
export function tokenAnswerQuirks(profile: Pick<StoredProfile, 'params'>): TokenAnswerQuirks {
  const setting = profile.params.token_response;
  const tr = isObject(setting) ? setting : {};
  return {
    formEncoded: tr.form_encoded === true,
    tokensAt: typeof tr.tokens_at === 'string' ? tr.tokens_at.split('.') : undefined,
    scopeSeparator: tr.scope_separator === ',' ? ',' : ' ',
    errorWith200: tr.error_with_200 === true,
  };
}

/** Whether the authorization request and code exchange use PKCE: all but `params.pkce: false`. */
export function usesPkce(profile: Pick<StoredProfile, 'params'>): boolean {
  return profile.params.pkce !== false;
}

/**
 * Requested scopes as the provider reads them (`params.scope_separator`). `+` is joined with a
 * space, which URL query and form encoding (URLSearchParams) write as a literal `+`: what such
 * providers document, and what a server decoding either way reads correctly.
 */
export function joinScopes(profile: Pick<StoredProfile, 'params'>, scopes: readonly string[]): string {
  return scopes.join(profile.params.scope_separator === ',' ? ',' : ' ');
}

/**
 * `send`, with every answer put into the standard form (see `TokenAnswerQuirks`). `tokenEndpoint`
 * decides which answers the provider's settings apply to.
 */
export function tolerantFetch(
  send: typeof fetch,
  options: { quirks: TokenAnswerQuirks; tokenEndpoint: string | undefined; dropIdToken: boolean },
): typeof fetch {
  const { quirks, dropIdToken } = options;
  const tokenEndpoint = options.tokenEndpoint === undefined ? undefined : new URL(options.tokenEndpoint).href;
  return async (input, init) => {
    const response = await send(input, init);
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const fromTokenEndpoint = tokenEndpoint !== undefined && URL.parse(url)?.href === tokenEndpoint;
    // No body to read (a revocation's 204): nothing to put right.
    if (NULL_BODY_STATUSES.has(response.status)) return response;
    // Media types are case-insensitive (RFC 9110 §8.3.1): `Application/JSON` is JSON.
    const type = (response.headers.get('content-type') ?? '').toLowerCase();
    const form = type.includes('application/x-www-form-urlencoded');
    const json = type.includes('json');
    if (!form && !json && !fromTokenEndpoint) return response;
    const text = await response.text();
    // The token endpoint's answer under another type (`text/plain`) is read as JSON, or as a form
    // with `form_encoded`.
    let body = parse(text, form ? 'form' : json || !quirks.formEncoded ? 'json' : 'either');
    // Not an object: passed on as it came, for oauth4webapi to refuse.
    if (body === undefined) return copy(response, text, response.status);
    let status = response.status;
    if (response.ok && isErrorAnswer(body, fromTokenEndpoint && quirks.errorWith200)) status = 400;
    else if (response.ok && fromTokenEndpoint) body = usableTokens(standardTokens(body, quirks));
    body = withExpiresIn(body);
    // Nothing reads an `id_token` at refresh, and one that fails its checks would lose the answer.
    if (status < 300 && (dropIdToken || (fromTokenEndpoint && isRefresh(init)))) body = withoutIdToken(body);
    const headers = new Headers(response.headers);
    // A JSON media type stays as it was (`application/jwk-set+json`…); anything read otherwise is now JSON.
    if (!json) headers.set('content-type', 'application/json');
    headers.delete('content-length');
    return new Response(JSON.stringify(body), {
      status,
      statusText: status === response.status ? response.statusText : 'Bad Request',
      headers,
    });
  };
}

/** A JSON object, or form fields as one; undefined for anything else. */
function parse(text: string, as: 'json' | 'form' | 'either'): Body | undefined {
  if (as !== 'form') {
    try {
      const value: unknown = JSON.parse(text);
      return isObject(value) ? value : undefined;
    } catch {
      if (as === 'json') return undefined;
    }
  }
  const fields = new URLSearchParams(text.trim());
  // `either` (form_encoded, any content type): a body with no `name=value` pair is not a form.
  if (as === 'either' && !text.includes('=')) return undefined;
  return Object.fromEntries(fields);
}

/** An unread answer's copy, with its body already read as `text`. */
function copy(response: Response, text: string, status: number): Response {
  return new Response(text, { status, statusText: response.statusText, headers: response.headers });
}

/**
 * An OAuth error answer sent with a 200 (RFC 6749 §5.2 says 400). Without the provider's
 * `error_with_200`, only an answer that has an `error` code and no token is one: a success that
 * also carries an `error` field (as some do, empty or informational) stays a success.
 */
function isErrorAnswer(body: Body, errorWith200: boolean): boolean {
  const hasError = typeof body.error === 'string' && body.error !== '';
  if (errorWith200) return hasError || body.ok === false;
  return hasError && body.access_token === undefined;
}

/** A successful token answer with the provider's settings applied. */
function standardTokens(body: Body, quirks: TokenAnswerQuirks): Body {
  let answer = body;
  if (quirks.tokensAt !== undefined) {
    const nested = at(body, quirks.tokensAt);
    if (nested !== undefined && typeof nested.access_token === 'string') {
      answer = { ...body };
      for (const field of TOKEN_FIELDS) delete answer[field];
      for (const field of TOKEN_FIELDS) if (nested[field] !== undefined) answer[field] = nested[field];
    }
  }
  const scope = answer.scope;
  if (Array.isArray(scope) && scope.every((s) => typeof s === 'string'))
    answer = { ...answer, scope: scope.join(' ') };
  if (quirks.scopeSeparator === ',' && typeof answer.scope === 'string') {
    answer = { ...answer, scope: spaceSeparated(answer.scope) };
  }
  return answer;
}

/**
 * A successful token answer whose optional parts oauth4webapi would refuse, made usable: a
 * missing or unknown `token_type` is read as bearer, and a `scope` that is not text or a
 * `refresh_token` that is not a non-empty string as absent. Refusing the whole answer would drop
 * the rotated refresh token it carries: the provider has already spent the old one.
 */
function usableTokens(answer: Body): Body {
  const out = { ...answer };
  const type = typeof out.token_type === 'string' ? out.token_type.toLowerCase() : undefined;
  if (type === undefined || !KNOWN_TOKEN_TYPES.has(type)) out.token_type = 'bearer';
  if ('scope' in out && typeof out.scope !== 'string') delete out.scope;
  if ('refresh_token' in out && (typeof out.refresh_token !== 'string' || out.refresh_token === ''))
    delete out.refresh_token;
  return out;
}

/** Whether a request is a refresh (RFC 6749 §6): its form body says `grant_type=refresh_token`. */
function isRefresh(init: RequestInit | undefined): boolean {
  const body = init?.body;
  const form =
    body instanceof URLSearchParams ? body : typeof body === 'string' ? new URLSearchParams(body) : undefined;
  return form?.get('grant_type') === 'refresh_token';
}

/** The object at a dotted path (own properties only), if there is one. */
function at(body: Body, path: readonly string[]): Body | undefined {
  let node: unknown = body;
  for (const key of path) {
    if (!isObject(node) || !Object.hasOwn(node, key)) return undefined;
    node = node[key];
  }
  return isObject(node) ? node : undefined;
}

/** `a,b, c` → `a b c` (RFC 6749 §3.3: space-delimited). */
function spaceSeparated(scope: string): string {
  return scope
    .split(/[\s,]+/)
    .filter((s) => s !== '')
    .join(' ');
}

/** The longest token lifetime read as one (ten years); a longer one is an unknown lifetime. */
export const MAX_EXPIRES_IN_S = 10 * 365 * 24 * 3600;

/** A numeric string (`"3600"`, `" 59.5 "`) as the number it spells; anything else as it is. */
const numeric = (value: unknown): unknown =>
  typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : value;

/**
 * A lifetime in seconds as a provider or the original's database gives it (a number, or a
 * numeric string), in whole seconds: undefined when it is not one, is negative, or is longer than
 * `MAX_EXPIRES_IN_S`. Fractions are dropped, so expiries stay whole milliseconds (PostgreSQL's
 * BIGINT refuses others) and a lifetime under a second is none (such a token does not extend the
 * one it replaces, so its refresh backs off instead of looping).
 */
export function lifetimeSeconds(value: unknown): number | undefined {
  const n = numeric(value);
  if (typeof n !== 'number' || !(n >= 0 && n <= MAX_EXPIRES_IN_S)) return undefined;
  return Math.floor(n);
}

/** When a token answered at `answeredAt` with `expiresIn` expires; null for an unknown lifetime. */
export function expiryOf(answeredAt: number, expiresIn: unknown): number | null {
  const seconds = lifetimeSeconds(expiresIn);
  return seconds === undefined ? null : answeredAt + seconds * 1000;
}

/**
 * `expires_in` as RFC 6749 §5.1 has it: a whole number of seconds (see `lifetimeSeconds`). A
 * negative number is 0: a token expired on arrival, which extends nothing (the refresh backs off),
 * while the answer's refresh token is kept. Anything else that is not a lifetime
 * (`null`, `""`, text such as `"3600s"` or `"1e13"`, an array, a lifetime past `MAX_EXPIRES_IN_S`)
 * is removed: an unknown lifetime, as when it is missing. oauth4webapi reads a non-number with
 * `parseFloat`, so leaving such a value would let `"3600.5s"` through as 3600.5.
 */
function withExpiresIn(body: Body): Body {
  if (!('expires_in' in body)) return body;
  const value = numeric(body.expires_in);
  if (typeof value === 'number' && value < 0) return { ...body, expires_in: 0 };
  const seconds = lifetimeSeconds(value);
  if (seconds !== undefined) return { ...body, expires_in: seconds };
  const { expires_in: _, ...rest } = body;
  return rest;
}

function withoutIdToken(body: Body): Body {
  if (!('id_token' in body)) return body;
  const { id_token: _, ...rest } = body;
  return rest;
}
