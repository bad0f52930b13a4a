/**
 * Test fixture: a REAL OpenID provider (npm `oidc-provider` by panva, v9) on 127.0.0.1, for tests of
 * the broker's OAuth2/OIDC consent, code exchange, refresh and revocation paths.
 *
 * - authorization code + PKCE (S256, required for every client), refresh tokens for every client that
 *   has the refresh_token grant type, RFC 9700 refresh-token rotation (reuse → invalid_grant and the
 *   whole grant revoked), revocation, userinfo, RS256-signed ID tokens with a key generated per fixture;
 * - an unbounded Map-based adapter (the package's built-in memory adapter is an LRU of ~1,000 entries:
 *   long tests would see tokens silently vanish and look like reuse);
 * - `consent()` drives the provider's own devInteractions login and consent pages over HTTP (cookie jar,
 *   HTML forms), the way a browser would, and stops at the redirect to the client's redirect_uri;
 * - fault injection on POST /token and /token/revocation; counts of processed grants and revocations;
 * - token answers rewritten and sent in another shape (form-encoded, another content type or status),
 *   optional PKCE and comma-separated scopes: the quirks of real providers (token-quirks.test.ts).
 */
import { createHash, createPrivateKey, generateKeyPair, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, ServerResponse } from 'node:http';
import { type AddressInfo, Socket } from 'node:net';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';

export interface OidcFixtureClient {
  client_id: string;
  /** For the client_secret_* methods. */
  client_secret?: string;
  token_endpoint_auth_method: 'client_secret_post' | 'client_secret_basic' | 'private_key_jwt';
  /** For private_key_jwt: the client's public keys. */
  jwks?: { keys: Record<string, unknown>[] };
  redirect_uris: string[];
}

export interface OidcFixtureOptions {
  /** Default true: every refresh returns a new refresh token; reusing an old one → invalid_grant and the grant is revoked. */
  rotateRefreshTokens?: boolean;
  /** Default: DEFAULT_CLIENTS (one client_secret_post client, one client_secret_basic client). */
  clients?: OidcFixtureClient[];
  /** Default 3600. */
  accessTokenTtlSeconds?: number;
  /**
   * Default `http://127.0.0.1:<port>` (ephemeral port). `{port}` in the value is replaced by the ephemeral port
   * (e.g. `http://localhost:{port}/oidc`); a value with an explicit port makes the fixture listen on that port.
   * The fixture always listens on 127.0.0.1; a path component is stripped from incoming requests.
   */
  issuer?: string;
  /**
   * Default true: every authorization request must carry PKCE. False: PKCE is optional, and a
   * code exchange that sends a `code_verifier` for a code issued without a challenge is refused.
   */
  pkceRequired?: boolean;
  /**
   * Default false. True: the provider also reads comma-separated `scope` in authorization
   * requests (GitHub, Slack), as oidc-provider itself reads only spaces.
   */
  readsCommaScopes?: boolean;
  /**
   * Default false: revoking a token revokes every token of its grant (oidc-provider's own
   * endpoint). True: like providers that revoke only the token presented, the fixture answers
   * POST /token/revocation itself (RFC 7009: the client authenticated by HTTP Basic or its form
   * credentials, the token found in the provider's store and destroyed if it is that client's),
   * and the rest of the grant stays live.
   */
  revokesPresentedTokenOnly?: boolean;
}

/** How the token endpoint sends a rewritten answer (setTokenResponseRewrite). */
export interface OidcAnswerShape {
  /** Form-encoded (`application/x-www-form-urlencoded`, values as text) instead of JSON. */
  form?: boolean;
  /** The Content-Type header sent instead (e.g. `text/plain` for a form body). */
  contentType?: string;
  /** The HTTP status sent instead (e.g. 200 for an error answer). */
  status?: number;
}

/**
 * Faults of POST /token and /token/revocation:
 * - `refuse`: the connection is dropped once the request has arrived (the client cannot tell
 *   whether it was processed);
 * - `down`: the whole provider stops listening (connections are refused; nothing was sent);
 * - `error500`, and `rate_limited`: 429 with `Retry-After: 120` and `{"error":"slow_down"}`;
 * - `slow`: held for the given time before it reaches the provider, dropped if the client gave up
 *   meanwhile (a hung front end);
 * - `answer_lost`: processed by the provider (a refresh token is rotated), but the answer never
 *   comes back: the connection is held, then dropped after the given time;
 * - `slow_answer`: processed by the provider at once, its answer sent the given time later.
 */
export type OidcFault =
  | 'none'
  | 'refuse'
  | 'down'
  | 'error500'
  | 'slow'
  | 'rate_limited'
  | 'answer_lost'
  | 'slow_answer';

export interface OidcFixture {
  readonly issuer: string;
  readonly port: number;
  readonly endpoints: {
    authorization: string;
    token: string;
    jwks: string;
    revocation: string;
    userinfo: string;
    /** GET: an Atlassian-like list of sites for a valid access token (setAccessibleResources). */
    accessible_resources: string;
  };
  /** The clients the provider knows (the option, or DEFAULT_CLIENTS). */
  readonly clients: readonly OidcFixtureClient[];
  /**
   * Token-endpoint grants that reached the provider and were processed (successfully or not),
   * revocation calls, POSTs that arrived at the token endpoint whether or not a fault stopped them
   * (`token_requests`), and refresh tokens presented again after they were rotated
   * (`refresh_reused`: each one revokes its whole grant, RFC 9700 §4.14.2).
   */
  readonly counts: {
    authorization_code: number;
    refresh_token: number;
    revocation: number;
    token_requests: number;
    refresh_reused: number;
  };
  /**
   * Fault injection for POST /token and POST /token/revocation. Stays in effect until set back to
   * 'none'; resolves once the fault is in place (`down` and back mean closing and reopening the port).
   */
  setTokenEndpointFault(fault: OidcFault, slowMs?: number): Promise<void>;
  /**
   * A provider that misbehaves in its successful answers: every JSON body the token endpoint sends
   * back passes through `rewrite` (e.g. `expires_in: 0`) until it is set back to undefined. The
   * tokens themselves are still the provider's own. `shape` sends the result another way
   * (form-encoded, another content type or status).
   */
  setTokenResponseRewrite(
    rewrite: ((body: Record<string, unknown>) => Record<string, unknown>) | undefined,
    shape?: OidcAnswerShape,
  ): void;
  /**
   * What GET `endpoints.accessible_resources` answers to a request with a valid access token of this
   * provider (Bearer): `answer` as JSON (default `[]`), or, a number, that status. Without a valid
   * token it answers 401.
   */
  setAccessibleResources(answer: readonly unknown[] | number): void;
  /** Browserless consent through the provider's own login and consent pages; returns the redirect to the client (not requested). */
  consent(authUrl: string, accountId?: string): Promise<URL>;
  /** Revokes every grant of an account, with all its codes, access tokens and refresh tokens. */
  revokeAllGrants(accountId?: string): Promise<void>;
  /**
   * A JWT access token (RFC 9068) the provider itself issues for `resource` (RFC 8707) after `accountId`
   * consents through the login pages: audience `resource`, RS256 with the provider's key, plus `claims`
   * (e.g. `permissions`, `tenant`) added by the provider as extra token claims.
   */
  issueUserToken(options: {
    resource: string;
    accountId?: string;
    claims?: Record<string, unknown>;
  }): Promise<string>;
  /**
   * A JWT signed RS256 with the provider's own signing key (the one its JWKS publishes), for claims the
   * provider would not issue itself (e.g. `nbf` in the future). `iss` defaults to the issuer.
   */
  signWithProviderKey(claims: Record<string, unknown>): Promise<string>;
  close(): Promise<void>;
}

export const DEFAULT_ACCOUNT_ID = 'test-user';
export const DEFAULT_SLOW_MS = 35_000;
export const DEFAULT_CLIENTS: readonly OidcFixtureClient[] = [
  {
    client_id: 'client-post',
    client_secret: 'client-post-secret',
    token_endpoint_auth_method: 'client_secret_post',
    redirect_uris: ['http://127.0.0.1:9/callback'],
  },
  {
    client_id: 'client-basic',
    client_secret: 'client-basic-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    redirect_uris: ['http://127.0.0.1:9/callback'],
  },
];

/** Bound on each HTTP request consent() makes, and on its number of steps. */
const CONSENT_STEP_TIMEOUT_MS = 10_000;
const CONSENT_MAX_STEPS = 20;

// ---------------------------------------------------------------------------------------------------------
// oidc-provider ships no type declarations: the few parts used here, typed loosely.

interface ProviderContext {
  oidc?: { route?: string; params?: Record<string, unknown> };
}
interface ProviderInstance {
  readonly issuer: string;
  urlFor(name: string, opt?: Record<string, unknown>): string;
  use(fn: (ctx: ProviderContext, next: () => Promise<void>) => Promise<void>): unknown;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  readonly Client: { find(id: string): Promise<unknown> };
  readonly AccessToken: { find(value: string): Promise<StoredToken | undefined> };
  readonly RefreshToken: { find(value: string): Promise<StoredToken | undefined> };
}
/** What the fixture reads of a token found in the provider's store. */
interface StoredToken {
  readonly clientId?: string;
  destroy(): Promise<void>;
}
type ProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance;

/** A non-literal specifier: the module is untyped, so TypeScript must not try to resolve its declarations. */
const OIDC_PROVIDER_MODULE: string = 'oidc-provider';

// ---------------------------------------------------------------------------------------------------------
// Unbounded storage (same contract as oidc-provider's memory adapter, without the LRU eviction).

type Payload = Record<string, unknown>;
interface Entry {
  payload: Payload;
  /** Epoch milliseconds; Infinity when the model gave no expiry. */
  expiresAt: number;
}

const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

class MapStore {
  /** `${model}:${id}` → entry. */
  readonly entries = new Map<string, Entry>();
  /** grantId → keys of the grantable artefacts issued under it. */
  readonly grantMembers = new Map<string, Set<string>>();
  readonly sessionUids = new Map<string, string>();
  readonly userCodes = new Map<string, string>();

  get(key: string): Payload | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  delete(key: string): void {
    const entry = this.entries.get(key);
    this.entries.delete(key);
    if (entry === undefined) return;
    const { grantId, uid, userCode } = entry.payload;
    if (typeof grantId === 'string') this.grantMembers.get(grantId)?.delete(key);
    const id = key.slice(key.indexOf(':') + 1);
    if (typeof uid === 'string' && this.sessionUids.get(uid) === id) this.sessionUids.delete(uid);
    if (typeof userCode === 'string' && this.userCodes.get(userCode) === id) this.userCodes.delete(userCode);
  }

  revokeByGrantId(grantId: string): void {
    for (const key of this.grantMembers.get(grantId) ?? []) this.delete(key);
    this.grantMembers.delete(grantId);
  }
}

class MapAdapter {
  readonly #model: string;
  readonly #store: MapStore;
  readonly #onReuse: () => void;

  constructor(model: string, store: MapStore, onReuse: () => void) {
    this.#model = model;
    this.#store = store;
    this.#onReuse = onReuse;
  }

  #key(id: string): string {
    return `${this.#model}:${id}`;
  }

  async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
    const key = this.#key(id);
    this.#store.delete(key);
    const expiresAt =
      typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Number.POSITIVE_INFINITY;
    this.#store.entries.set(key, { payload: structuredClone(payload), expiresAt });
    if (this.#model === 'Session' && typeof payload.uid === 'string')
      this.#store.sessionUids.set(payload.uid, id);
    if (typeof payload.userCode === 'string') this.#store.userCodes.set(payload.userCode, id);
    if (GRANTABLE.has(this.#model) && typeof payload.grantId === 'string') {
      let members = this.#store.grantMembers.get(payload.grantId);
      if (members === undefined) {
        members = new Set();
        this.#store.grantMembers.set(payload.grantId, members);
      }
      members.add(key);
    }
  }

  async find(id: string): Promise<Payload | undefined> {
    const payload = this.#store.get(this.#key(id));
    // A rotated refresh token looked up again: the provider is about to detect its reuse.
    if (this.#model === 'RefreshToken' && payload?.consumed !== undefined) this.#onReuse();
    return payload === undefined ? undefined : structuredClone(payload);
  }

  async findByUid(uid: string): Promise<Payload | undefined> {
    const id = this.#store.sessionUids.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode: string): Promise<Payload | undefined> {
    const id = this.#store.userCodes.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id: string): Promise<void> {
    const payload = this.#store.get(this.#key(id));
    if (payload !== undefined) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id: string): Promise<void> {
    this.#store.delete(this.#key(id));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    this.#store.revokeByGrantId(grantId);
  }
}

// ---------------------------------------------------------------------------------------------------------
// A small cookie jar for one host (name + path, expiry; no domain logic).

interface Cookie {
  name: string;
  value: string;
  path: string;
  expiresAt: number;
}

class CookieJar {
  readonly #cookies = new Map<string, Cookie>();

  store(setCookies: string[], url: URL): void {
    for (const line of setCookies) {
      const [pair = '', ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = url.pathname.slice(0, url.pathname.lastIndexOf('/')) || '/';
      let expiresAt = Number.POSITIVE_INFINITY;
      let maxAgeSeen = false;
      for (const attribute of attributes) {
        const aeq = attribute.indexOf('=');
        const key = (aeq === -1 ? attribute : attribute.slice(0, aeq)).trim().toLowerCase();
        const val = aeq === -1 ? '' : attribute.slice(aeq + 1).trim();
        if (key === 'path' && val.startsWith('/')) path = val;
        else if (key === 'max-age' && /^-?\d+$/.test(val)) {
          maxAgeSeen = true;
          expiresAt = Date.now() + Number(val) * 1000;
        } else if (key === 'expires' && !maxAgeSeen) {
          const parsed = Date.parse(val);
          if (!Number.isNaN(parsed)) expiresAt = parsed;
        }
      }
      const id = `${name}\n${path}`;
      if (expiresAt <= Date.now()) this.#cookies.delete(id);
      else this.#cookies.set(id, { name, value, path, expiresAt });
    }
  }

  header(url: URL): string | undefined {
    const now = Date.now();
    const pairs: string[] = [];
    for (const [id, cookie] of this.#cookies) {
      if (cookie.expiresAt <= now) {
        this.#cookies.delete(id);
        continue;
      }
      const { path } = cookie;
      const matches =
        url.pathname === path ||
        (url.pathname.startsWith(path) && (path.endsWith('/') || url.pathname.charAt(path.length) === '/'));
      if (matches) pairs.push(`${cookie.name}=${cookie.value}`);
    }
    return pairs.length === 0 ? undefined : pairs.join('; ');
  }
}

// ---------------------------------------------------------------------------------------------------------
// HTML form scraping for the devInteractions pages.

function decodeEntities(text: string): string {
  return text
    .replace(/&#x([0-9a-f]+);/gi, (_, hex: string) => String.fromCodePoint(Number.parseInt(hex, 16)))
    .replace(/&#(\d+);/g, (_, dec: string) => String.fromCodePoint(Number(dec)))
    .replace(/&quot;/g, '"')
    .replace(/&#39;|&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function attribute(tag: string, name: string): string | undefined {
  const match = new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s"'>/]+))`, 'i').exec(tag);
  if (match === null) return undefined;
  return decodeEntities(match[1] ?? match[2] ?? match[3] ?? '');
}

interface ScrapedForm {
  action: string;
  method: string;
  inputs: Array<{ name: string; type: string; value: string }>;
}

function scrapeForm(html: string): ScrapedForm | undefined {
  const match = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (match === null) return undefined;
  const [, formAttributes = '', body = ''] = match;
  const inputs: ScrapedForm['inputs'] = [];
  for (const [tag] of body.matchAll(/<input\b[^>]*>/gi)) {
    const name = attribute(tag, 'name');
    if (name === undefined) continue;
    inputs.push({
      name,
      type: (attribute(tag, 'type') ?? 'text').toLowerCase(),
      value: attribute(tag, 'value') ?? '',
    });
  }
  return {
    action: attribute(` ${formAttributes}`, 'action') ?? '',
    method: (attribute(` ${formAttributes}`, 'method') ?? 'get').toLowerCase(),
    inputs,
  };
}

function snippet(html: string): string {
  return html
    .replace(/<head[\s\S]*?<\/head>/gi, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 300);
}

// ---------------------------------------------------------------------------------------------------------

/**
 * devInteractions are wanted here (consent() drives their pages), so the package's warning about them,
 * printed once per Provider construction, is dropped; any other warning passes through.
 */
function constructQuietly<T>(construct: () => T): T {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('development-only feature devInteractions')) return;
    warn.apply(console, args);
  };
  try {
    return construct();
  } finally {
    console.warn = warn;
  }
}

/**
 * Constructs the provider and loads every static client (oidc-provider validates client metadata lazily),
 * so a bad configuration fails startOidcProvider() itself, after closing the already listening server.
 */
async function createProvider(
  server: Server,
  construct: () => ProviderInstance,
  clientIds: readonly string[],
): Promise<ProviderInstance> {
  try {
    const provider = constructQuietly(construct);
    for (const clientId of clientIds) {
      if ((await provider.Client.find(clientId)) === undefined)
        throw new Error(`client ${clientId} not loaded`);
    }
    return provider;
  } catch (error) {
    server.close();
    throw error;
  }
}

function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Passes the JSON body of `res` through `rewrite` when it is sent (koa sends it in one `end`),
 * and sends the result in `shape`.
 */
function rewriteBody(
  res: ServerResponse,
  rewrite: (body: Record<string, unknown>) => Record<string, unknown>,
  shape: OidcAnswerShape = {},
) {
  const end = res.end.bind(res) as (chunk?: unknown) => ServerResponse;
  res.end = ((chunk?: unknown) => {
    if (typeof chunk !== 'string' && !Buffer.isBuffer(chunk)) return end(chunk);
    let text = String(chunk);
    let rewritten = false;
    try {
      const body = rewrite(JSON.parse(text) as Record<string, unknown>);
      text = shape.form
        ? new URLSearchParams(
            Object.entries(body).map(([k, v]): [string, string] => [k, String(v)]),
          ).toString()
        : JSON.stringify(body);
      rewritten = true;
    } catch {
      // Not JSON: sent as it is.
    }
    if (!res.headersSent) {
      res.setHeader('content-length', Buffer.byteLength(text));
      if (rewritten && shape.form) res.setHeader('content-type', 'application/x-www-form-urlencoded');
      if (rewritten && shape.contentType !== undefined) res.setHeader('content-type', shape.contentType);
      if (rewritten && shape.status !== undefined) res.statusCode = shape.status;
    }
    return end(text);
  }) as typeof res.end;
}

function sameEndpoint(a: URL, b: URL): boolean {
  return a.origin === b.origin && a.pathname === b.pathname;
}

export async function startOidcProvider(options: OidcFixtureOptions = {}): Promise<OidcFixture> {
  const { Provider } = (await import(OIDC_PROVIDER_MODULE)) as { Provider: ProviderConstructor };
  const rotateRefreshTokens = options.rotateRefreshTokens ?? true;
  const accessTokenTtlSeconds = options.accessTokenTtlSeconds ?? 3600;
  const clients = (options.clients ?? DEFAULT_CLIENTS).map((client) => ({
    ...client,
    redirect_uris: [...client.redirect_uris],
  }));

  // Parsed before anything listens: a malformed redirect URI fails here, leaving nothing open.
  const knownRedirects = clients.flatMap((client) =>
    client.redirect_uris.map((uri) => {
      const parsed = URL.parse(uri);
      if (parsed === null) throw new TypeError(`client ${client.client_id}: invalid redirect URI ${uri}`);
      return parsed;
    }),
  );

  const { privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
  const signingKey = {
    ...privateKey.export({ format: 'jwk' }),
    kid: `fixture-${randomBytes(6).toString('hex')}`,
    alg: 'RS256',
    use: 'sig',
  };

  const store = new MapStore();
  /** accountId → extra claims for its JWT access tokens (issueUserToken). */
  const extraClaims = new Map<string, Record<string, unknown>>();
  const counts = {
    authorization_code: 0,
    refresh_token: 0,
    revocation: 0,
    token_requests: 0,
    refresh_reused: 0,
  };
  let fault: OidcFault = 'none';
  let rewriteAnswer: ((body: Record<string, unknown>) => Record<string, unknown>) | undefined;
  let answerShape: OidcAnswerShape = {};
  let accessibleResources: readonly unknown[] | number = [];
  let slowMs = DEFAULT_SLOW_MS;
  let closed = false;
  const sockets = new Set<Socket>();
  const slowTimers = new Set<NodeJS.Timeout>();
  let handle: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;

  const server = createServer((req, res) => {
    if (handle === undefined) {
      res.writeHead(503).end();
      return;
    }
    handle(req, res);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const requestedPort =
    options.issuer === undefined || options.issuer.includes('{port}')
      ? 0
      : Number(new URL(options.issuer).port);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(requestedPort, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const issuer = (options.issuer ?? 'http://127.0.0.1:{port}').replaceAll('{port}', String(port));

  const provider = await createProvider(
    server,
    () =>
      new Provider(issuer, {
        adapter: (model: string) =>
          new MapAdapter(model, store, () => {
            counts.refresh_reused += 1;
          }),
        clients: clients.map((client) => ({
          ...client,
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          id_token_signed_response_alg: 'RS256',
        })),
        jwks: { keys: [signingKey] },
        cookies: { keys: [randomBytes(32).toString('base64url')] },
        // Same clock for the provider and the tests: expiry should be exact, not 15 s late.
        clockTolerance: 0,
        features: {
          devInteractions: { enabled: true },
          revocation: {
            enabled: true,
            allowedPolicy: async (
              _ctx: unknown,
              client: { clientId: string },
              token: { clientId?: string },
            ) => token.clientId === client.clientId,
          },
          userinfo: { enabled: true },
          // Any resource indicator gets an RS256 JWT access token for it (issueUserToken); requests
          // without one keep the opaque tokens the other tests use.
          resourceIndicators: {
            enabled: true,
            getResourceServerInfo: async (_ctx: unknown, resource: string) => ({
              scope: 'api:read',
              audience: resource,
              accessTokenFormat: 'jwt',
              jwt: { sign: { alg: 'RS256' } },
            }),
          },
        },
        pkce: { required: () => options.pkceRequired ?? true },
        scopes: ['openid', 'offline_access', 'profile', 'email', 'api:read'],
        claims: {
          openid: ['sub'],
          email: ['email', 'email_verified'],
          profile: ['name'],
        },
        extraTokenClaims: async (_ctx: unknown, token: { accountId?: string; resourceServer?: unknown }) =>
          token.resourceServer !== undefined && token.accountId !== undefined
            ? extraClaims.get(token.accountId)
            : undefined,
        issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) =>
          client.grantTypeAllowed('refresh_token'),
        // Refresh tokens are not bound to the (browser) session that created them.
        expiresWithSession: async () => false,
        rotateRefreshToken: rotateRefreshTokens,
        ttl: {
          AccessToken: accessTokenTtlSeconds,
          AuthorizationCode: 60,
          IdToken: 3600,
          Interaction: 3600,
          Session: 14 * 24 * 3600,
          Grant: 14 * 24 * 3600,
          RefreshToken: 14 * 24 * 3600,
        },
        findAccount: async (_ctx: unknown, sub: string) => ({
          accountId: sub,
          claims: async () => ({ sub, email: `${sub}@example.test`, email_verified: true, name: sub }),
        }),
        // The package's own error page, minus its "you SHOULD change renderError" notice.
        renderError: async (ctx: { type: string; body: string }, out: Record<string, unknown>) => {
          ctx.type = 'html';
          const lines = Object.entries(out).map(
            ([key, value]) => `<pre>${escapeHtml(key)}: ${escapeHtml(value)}</pre>`,
          );
          ctx.body = `<!DOCTYPE html><html><head><title>error</title></head><body>${lines.join('')}</body></html>`;
        },
      }),
    clients.map((client) => client.client_id),
  );

  // Count what the provider processed: this middleware wraps the provider's own router.
  provider.use(async (ctx, next) => {
    try {
      await next();
    } finally {
      const route = ctx.oidc?.route;
      if (route === 'token') {
        const grantType = ctx.oidc?.params?.grant_type;
        if (grantType === 'authorization_code') counts.authorization_code += 1;
        else if (grantType === 'refresh_token') counts.refresh_token += 1;
      } else if (route === 'revocation') {
        counts.revocation += 1;
      }
    }
  });

  const issuerUrl = new URL(issuer);
  const mountPath = issuerUrl.pathname.replace(/\/$/, '');
  const endpoints = {
    authorization: provider.urlFor('authorization'),
    token: provider.urlFor('token'),
    jwks: provider.urlFor('jwks'),
    revocation: provider.urlFor('revocation'),
    userinfo: provider.urlFor('userinfo'),
    accessible_resources: `${issuer.replace(/\/$/, '')}/accessible-resources`,
  };
  const resourcesPath = new URL(endpoints.accessible_resources).pathname;
  /** Like Atlassian's accessible-resources: only for a valid (unexpired, unrevoked) access token. */
  const answerResources = async (req: IncomingMessage, res: ServerResponse) => {
    const send = (status: number, body: unknown) =>
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    const token = bearer === undefined ? undefined : await provider.AccessToken.find(bearer);
    if (token === undefined) return send(401, { error: 'invalid_token' });
    if (typeof accessibleResources === 'number') return send(accessibleResources, { error: 'refused' });
    send(200, accessibleResources);
  };
  const tokenPath = new URL(endpoints.token).pathname;
  const authorizationPath = new URL(endpoints.authorization).pathname;
  const revocationPath = new URL(endpoints.revocation).pathname;
  const faultPaths = new Set([tokenPath, revocationPath]);
  const callback = provider.callback();

  const dispatch = (req: IncomingMessage, res: ServerResponse): void => {
    if (mountPath !== '') {
      const url = req.url ?? '/';
      if (url !== mountPath && !url.startsWith(`${mountPath}/`) && !url.startsWith(`${mountPath}?`)) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
        return;
      }
      // Like a mounted sub-app: oidc-provider derives its mount path from originalUrl vs url.
      (req as IncomingMessage & { originalUrl?: string }).originalUrl = url;
      req.url = url.slice(mountPath.length) || '/';
      if (req.url.startsWith('?')) req.url = `/${req.url}`;
    }
    callback(req, res);
  };

  /** `revokesPresentedTokenOnly`: POST /token/revocation destroys the presented token alone. */
  const revokeOnly = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const form = new URLSearchParams(Buffer.concat(chunks).toString());
    const basic = /^Basic (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    const [id, secret] = basic
      ? Buffer.from(basic, 'base64').toString().split(':').map(decodeURIComponent)
      : [form.get('client_id'), form.get('client_secret')];
    const client = clients.find((c) => c.client_id === id && c.client_secret === secret);
    const send = (status: number, body = '') =>
      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    if (client === undefined) return void send(401, '{"error":"invalid_client"}');
    counts.revocation += 1;
    const presented = form.get('token') ?? '';
    const token =
      (await provider.RefreshToken.find(presented)) ?? (await provider.AccessToken.find(presented));
    if (token !== undefined && token.clientId === client.client_id) await token.destroy();
    send(200);
  };
  /** The provider, or the fixture's own revocation answer when `revokesPresentedTokenOnly`. */
  const serve = (req: IncomingMessage, res: ServerResponse, pathname: string): void => {
    if (options.revokesPresentedTokenOnly && req.method === 'POST' && pathname === revocationPath) {
      revokeOnly(req, res).catch(() => res.destroy());
      return;
    }
    dispatch(req, res);
  };

  handle = (req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://fixture.invalid').pathname;
    if (options.readsCommaScopes && req.method === 'GET' && pathname === authorizationPath) {
      const url = new URL(req.url ?? '/', 'http://fixture.invalid');
      const scope = url.searchParams.get('scope');
      if (scope !== null) url.searchParams.set('scope', scope.replaceAll(',', ' '));
      req.url = url.pathname + url.search;
    }
    if (req.method === 'GET' && pathname === resourcesPath) {
      answerResources(req, res).catch(() => res.destroy());
      return;
    }
    if (req.method === 'POST' && pathname === tokenPath) {
      counts.token_requests += 1;
      if (rewriteAnswer !== undefined) rewriteBody(res, rewriteAnswer, answerShape);
    }
    if (req.method !== 'POST' || !faultPaths.has(pathname) || fault === 'none' || fault === 'down') {
      serve(req, res, pathname);
      return;
    }
    switch (fault) {
      case 'answer_lost': {
        // The provider processes the request; what it writes back goes nowhere.
        const swallow = new ServerResponse(req);
        swallow.assignSocket(new Socket());
        swallow.write = () => true;
        swallow.end = () => swallow;
        const timer = setTimeout(() => {
          slowTimers.delete(timer);
          req.socket.destroy();
        }, slowMs);
        slowTimers.add(timer);
        serve(req, swallow, pathname);
        return;
      }
      case 'refuse':
        req.socket.destroy();
        return;
      case 'error500':
        res.writeHead(500, { 'content-type': 'application/json', connection: 'close' });
        res.end('{"error":"server_error"}');
        return;
      case 'rate_limited':
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '120', connection: 'close' });
        res.end('{"error":"slow_down"}');
        return;
      case 'slow': {
        const timer = setTimeout(() => {
          slowTimers.delete(timer);
          // The client gave up during the wait: the request never reaches the provider.
          if (closed || req.destroyed || res.destroyed || req.socket.destroyed) return;
          serve(req, res, pathname);
        }, slowMs);
        slowTimers.add(timer);
        return;
      }
      case 'slow_answer': {
        // Processed now; what the provider writes back leaves `slowMs` later, all at once.
        const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
        res.end = ((...args: unknown[]) => {
          const timer = setTimeout(() => {
            slowTimers.delete(timer);
            end(...args);
          }, slowMs);
          slowTimers.add(timer);
          return res;
        }) as ServerResponse['end'];
        serve(req, res, pathname);
        return;
      }
    }
  };

  const isClientRedirect = (target: URL): boolean =>
    target.origin !== issuerUrl.origin || knownRedirects.some((uri) => sameEndpoint(uri, target));

  async function consent(authUrl: string, accountId: string = DEFAULT_ACCOUNT_ID): Promise<URL> {
    const jar = new CookieJar();
    let url = new URL(authUrl);
    let method = 'GET';
    let body: URLSearchParams | undefined;
    for (let step = 0; step < CONSENT_MAX_STEPS; step += 1) {
      const headers: Record<string, string> = { accept: 'text/html' };
      const cookie = jar.header(url);
      if (cookie !== undefined) headers.cookie = cookie;
      if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
      const response = await fetch(url, {
        method,
        headers,
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(CONSENT_STEP_TIMEOUT_MS),
      });
      jar.store(response.headers.getSetCookie(), url);
      const location = response.headers.get('location');
      if (response.status >= 300 && response.status < 400 && location !== null) {
        await response.body?.cancel();
        const target = new URL(location, url);
        if (isClientRedirect(target)) return target;
        url = target;
        method = 'GET';
        body = undefined;
        continue;
      }
      const html = await response.text();
      const form = response.ok ? scrapeForm(html) : undefined;
      if (form === undefined) {
        throw new Error(`consent: unexpected ${response.status} from ${url.href}: ${snippet(html)}`);
      }
      const action = new URL(form.action || url.href, url);
      if (isClientRedirect(action)) {
        throw new Error(`consent: the provider answered with a form posting to the client (${action.href})`);
      }
      const fields = new URLSearchParams();
      for (const input of form.inputs) {
        if (input.name === 'login') fields.set('login', accountId);
        else if (input.type === 'password') fields.set(input.name, 'any-password');
        else if (input.type === 'hidden' || input.value !== '') fields.set(input.name, input.value);
      }
      url = action;
      method = form.method === 'post' ? 'POST' : 'GET';
      if (method === 'POST') {
        body = fields;
      } else {
        for (const [name, value] of fields) url.searchParams.set(name, value);
        body = undefined;
      }
    }
    throw new Error(
      `consent: no redirect to the client after ${CONSENT_MAX_STEPS} steps (last: ${url.href})`,
    );
  }

  async function revokeAllGrants(accountId: string = DEFAULT_ACCOUNT_ID): Promise<void> {
    for (const key of [...store.entries.keys()]) {
      if (!key.startsWith('Grant:')) continue;
      const payload = store.get(key);
      if (payload?.accountId !== accountId) continue;
      store.revokeByGrantId(key.slice('Grant:'.length));
      store.delete(key);
    }
  }

  async function issueUserToken(options: {
    resource: string;
    accountId?: string;
    claims?: Record<string, unknown>;
  }): Promise<string> {
    const accountId = options.accountId ?? DEFAULT_ACCOUNT_ID;
    extraClaims.set(accountId, options.claims ?? {});
    const client = clients.find((c) => c.token_endpoint_auth_method === 'client_secret_post');
    if (client === undefined) throw new Error('issueUserToken needs a client_secret_post client');
    const verifier = randomBytes(32).toString('base64url');
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    const redirectUri = client.redirect_uris[0]!;
    const auth = new URL(endpoints.authorization);
    for (const [name, value] of Object.entries({
      client_id: client.client_id,
      response_type: 'code',
      redirect_uri: redirectUri,
      scope: 'openid api:read',
      resource: options.resource,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state: randomBytes(8).toString('hex'),
    }))
      auth.searchParams.set(name, value);
    const back = await consent(auth.href, accountId);
    const code = back.searchParams.get('code');
    if (code === null) throw new Error(`issueUserToken: no code in ${back.href}`);
    const response = await fetch(endpoints.token, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: redirectUri,
        code_verifier: verifier,
        resource: options.resource,
        client_id: client.client_id,
        client_secret: client.client_secret ?? '',
      }),
      signal: AbortSignal.timeout(CONSENT_STEP_TIMEOUT_MS),
    });
    const body = (await response.json()) as { access_token?: string };
    if (!response.ok || typeof body.access_token !== 'string')
      throw new Error(`issueUserToken: token endpoint answered ${response.status} ${JSON.stringify(body)}`);
    return body.access_token;
  }

  async function signWithProviderKey(claims: Record<string, unknown>): Promise<string> {
    const key = createPrivateKey({ key: signingKey, format: 'jwk' });
    return new SignJWT({ iss: issuer, ...claims })
      .setProtectedHeader({ alg: 'RS256', kid: signingKey.kid, typ: 'at+jwt' })
      .sign(key);
  }

  let closing: Promise<void> | undefined;
  function close(): Promise<void> {
    closing ??= new Promise<void>((resolve) => {
      closed = true;
      for (const timer of slowTimers) clearTimeout(timer);
      slowTimers.clear();
      server.close(() => resolve());
      server.closeAllConnections();
      for (const socket of sockets) socket.destroy();
    });
    return closing;
  }

  return {
    issuer,
    port,
    endpoints,
    clients,
    counts,
    setAccessibleResources(answer) {
      accessibleResources = answer;
    },
    setTokenResponseRewrite(rewrite, shape = {}) {
      rewriteAnswer = rewrite;
      answerShape = shape;
    },
    async setTokenEndpointFault(next: OidcFault, ms: number = DEFAULT_SLOW_MS): Promise<void> {
      const wasDown = fault === 'down';
      fault = next;
      slowMs = ms;
      if (next === 'down' && !wasDown) {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
          for (const socket of sockets) socket.destroy();
        });
      } else if (next !== 'down' && wasDown && !closed) {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, '127.0.0.1', () => {
            server.off('error', reject);
            resolve();
          });
        });
      }
    },
    consent,
    revokeAllGrants,
    issueUserToken,
    signWithProviderKey,
    close,
  };
}
