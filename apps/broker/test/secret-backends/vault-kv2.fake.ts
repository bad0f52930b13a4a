/**
 * A FAKE Vault/OpenBao server: not Vault. No real server that can be installed here offers KV
 * version 2 (OpenBao's Go module is refused by the module proxy, Vault's does not build, and
 * RustyVault silently treats a v2 mount as v1; see docs/decisions/0007-secret-backends.md), so
 * KV v2 is tested against this double, written from the published HTTP API documentation
 * (developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2, openbao.org/api-docs/secret/kv/kv-v2,
 * auth/token, auth/approle, sys/seal-status). It behaves like the real server where clients break:
 *
 * - KV v2 under `/v1/<mount>/data|metadata/<path>`: versions, `?version=`, `options.cas`
 *   (400 "check-and-set parameter did not match the current version"), `max_versions` 10,
 *   soft-deleted versions read as 404 with `data: null`, `?list=true` listing one level;
 * - tokens with a TTL on the fake's clock, `lookup-self`, `renew-self` (capped at a max TTL; an
 *   expired token gets 403), AppRole login (400 "invalid role or secret ID"), Kubernetes login
 *   (`auth/kubernetes/login`: an unknown role is 400 "invalid role name", a service-account JWT the
 *   cluster would not confirm is 403 "permission denied"; the fake accepts the JWTs it was given, in
 *   place of Vault's TokenReview call to the Kubernetes API);
 * - policies as allowed path prefixes (403 "permission denied" in Vault's multi-error format);
 * - namespaces from `X-Vault-Namespace`: one store per namespace, a token only reaches its own
 *   namespace and its children;
 * - sealed: every call but `sys/seal-status` answers 503 "Vault is sealed";
 * - injected failures (`failNext`) for 429 / 5xx retries;
 * - a Transit engine at `transit/` (encrypt, decrypt, rewrap, datakey/wrapped; key versions and
 *   rotation), from developer.hashicorp.com/vault/api-docs/secret/transit: no installable server
 *   here has Transit (RustyVault does not).
 *
 * Where it differs: the LIST verb is refused with 405 (Node's HTTP parser cannot read it), as some
 * proxies in front of Vault do; listing goes through `GET ?list=true`, which Vault also serves.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

interface Version {
  data: Record<string, unknown> | null;
  created: string;
  deleted: string;
}
interface Entry {
  versions: Map<number, Version>;
  current: number;
}
export interface FakeToken {
  namespace: string;
  /** Allowed logical paths (after `<mount>/data/` or `<mount>/metadata/`) by prefix; `*` for all. */
  allow: string[];
  ttlSeconds: number;
  maxTtlSeconds: number;
  issuedAt: number;
  expiresAt: number;
  renewable: boolean;
}

const PERMISSION_DENIED = '1 error occurred:\n\t* permission denied\n\n';
const MAX_VERSIONS = 10;

export class FakeVault {
  /** The fake's clock (ms); tests move it to expire tokens. */
  now = Date.now();
  sealed = false;
  readonly mount: string;
  readonly tokens = new Map<string, FakeToken>();
  readonly roles = new Map<
    string,
    { secretId: string; allow: string[]; namespace: string; ttlSeconds: number }
  >();
  readonly k8sRoles = new Map<string, { jwts: Set<string>; allow: string[]; ttlSeconds: number }>();
  /** Every request: method, URL, status, namespace header. */
  readonly requests: { method: string; url: string; status: number; namespace: string }[] = [];
  private readonly stores = new Map<string, Map<string, Entry>>();
  private readonly failures: { status: number; errors: string[]; method: string | undefined }[] = [];
  private server: Server | undefined;
  /** How many LIST requests the fake refused at the HTTP parser. */
  listVerbRefused = 0;
  /** Tokens revoked through `revoke-self`. */
  readonly revoked: string[] = [];
  /** When set, `renew-self` answers 403 (a policy without it) while the token stays valid. */
  renewRefused = false;
  url = '';

  constructor(mount = 'secret') {
    this.mount = mount;
  }

  /** Issues a token; `allow` defaults to everything. */
  issueToken(options: Partial<Omit<FakeToken, 'issuedAt' | 'expiresAt'>> = {}): string {
    const token = `hvs.fake${randomBytes(12).toString('hex')}`;
    const ttlSeconds = options.ttlSeconds ?? 0;
    this.tokens.set(token, {
      namespace: options.namespace ?? '',
      allow: options.allow ?? ['*'],
      ttlSeconds,
      maxTtlSeconds: options.maxTtlSeconds ?? 0,
      issuedAt: this.now,
      expiresAt: ttlSeconds > 0 ? this.now + ttlSeconds * 1000 : Number.POSITIVE_INFINITY,
      renewable: options.renewable ?? ttlSeconds > 0,
    });
    return token;
  }

  /** Creates an AppRole role; returns its role id and a secret id. */
  addRole(options: { allow?: string[]; namespace?: string; ttlSeconds?: number } = {}) {
    const roleId = randomBytes(8).toString('hex');
    const secretId = randomBytes(8).toString('hex');
    this.roles.set(roleId, {
      secretId,
      allow: options.allow ?? ['*'],
      namespace: options.namespace ?? '',
      ttlSeconds: options.ttlSeconds ?? 60,
    });
    return { roleId, secretId };
  }

  /** A Kubernetes-auth role accepting the given service-account JWTs (the cluster's TokenReview, faked). */
  addK8sRole(options: { role: string; jwts: string[]; allow?: string[]; ttlSeconds?: number }) {
    this.k8sRoles.set(options.role, {
      jwts: new Set(options.jwts),
      allow: options.allow ?? ['*'],
      ttlSeconds: options.ttlSeconds ?? 60,
    });
  }

  /** Transit keys: every version's 256-bit key, newest last. */
  readonly transitKeys = new Map<string, Buffer[]>();

  addTransitKey(name: string): void {
    this.transitKeys.set(name, [randomBytes(32)]);
  }

  /** Like `vault write -f transit/keys/<name>/rotate`: a new newest version; old ones still decrypt. */
  rotateTransitKey(name: string): void {
    this.transitKeys.get(name)?.push(randomBytes(32));
  }

  /** Transit's encrypt, decrypt, rewrap and datakey/wrapped, with `vault:v<n>:` ciphertexts (AES-256-GCM). */
  private transit(
    op: string,
    name: string,
    body: Record<string, unknown>,
    reply: (status: number, body?: unknown) => void,
  ) {
    const versions = this.transitKeys.get(name);
    if (!versions) return reply(400, { errors: ['encryption key not found'] });
    const seal = (plaintext: Buffer) => {
      const n = versions.length;
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', versions[n - 1]!, iv);
      const out = Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
      return `vault:v${n}:${out.toString('base64')}`;
    };
    const open = (ciphertext: unknown): Buffer | undefined => {
      const m = /^vault:v(\d+):([A-Za-z0-9+/=]+)$/.exec(String(ciphertext));
      const key = m ? versions[Number(m[1]) - 1] : undefined;
      if (!m || !key) return undefined;
      const raw = Buffer.from(m[2]!, 'base64');
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
        decipher.setAuthTag(raw.subarray(raw.length - 16));
        return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]);
      } catch {
        return undefined;
      }
    };
    if (op === 'datakey/wrapped')
      return reply(200, { data: { ciphertext: seal(randomBytes(32)), key_version: versions.length } });
    if (op === 'encrypt')
      return reply(200, { data: { ciphertext: seal(Buffer.from(String(body.plaintext ?? ''), 'base64')) } });
    const plain = open(body.ciphertext);
    if (plain === undefined) return reply(400, { errors: ['cipher: message authentication failed'] });
    if (op === 'decrypt') return reply(200, { data: { plaintext: plain.toString('base64') } });
    return reply(200, { data: { ciphertext: seal(plain), key_version: versions.length } });
  }

  /** The next `count` requests (of `method`, if given) answer `status` with `errors`, before any other check. */
  failNext(status: number, count = 1, errors: string[] = [], method?: string): void {
    for (let i = 0; i < count; i++) this.failures.push({ status, errors, method });
  }

  /** The latest data at a path (mount-relative), or undefined; for assertions. */
  latest(path: string, namespace = ''): Record<string, unknown> | undefined {
    const entry = this.stores.get(namespace)?.get(path);
    return entry?.versions.get(entry.current)?.data ?? undefined;
  }

  /** The current version of a path in a namespace, for assertions. */
  currentVersion(path: string, namespace = ''): number {
    return this.stores.get(namespace)?.get(path)?.current ?? 0;
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handle(req, res, Buffer.concat(chunks).toString('utf8')));
    });
    // Node's HTTP parser does not know Vault's LIST verb: answer it like a proxy that refuses
    // unknown methods, which sends the client to the documented `GET ?list=true`.
    this.server.on('clientError', (_error, socket) => {
      this.listVerbRefused += 1;
      socket.end('HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  private send(res: ServerResponse, status: number, body?: unknown) {
    if (body === undefined) {
      res.writeHead(status).end();
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }

  private handle(req: IncomingMessage, res: ServerResponse, raw: string) {
    const url = new URL(req.url ?? '/', 'http://fake');
    const namespace = String(req.headers['x-vault-namespace'] ?? '').replace(/^\/+|\/+$/g, '');
    const method = req.method ?? 'GET';
    const reply = (status: number, body?: unknown) => {
      this.requests.push({ method, url: url.pathname + url.search, status, namespace });
      this.send(res, status, body);
    };
    const at = this.failures.findIndex((f) => f.method === undefined || f.method === method);
    if (at !== -1) {
      const [injected] = this.failures.splice(at, 1);
      if (injected) return reply(injected.status, { errors: injected.errors });
    }
    const path = url.pathname;
    if (path === '/v1/sys/seal-status')
      return reply(200, { type: 'shamir', initialized: true, sealed: this.sealed, t: 1, n: 1, progress: 0 });
    if (this.sealed) return reply(503, { errors: ['Vault is sealed'] });
    let body: Record<string, unknown> = {};
    try {
      body = raw === '' ? {} : (JSON.parse(raw) as Record<string, unknown>);
    } catch {
      return reply(400, { errors: ['failed to parse JSON input'] });
    }

    if (path === '/v1/auth/kubernetes/login' && method === 'POST') {
      const role = this.k8sRoles.get(String(body.role));
      if (!role) return reply(400, { errors: [`invalid role name "${String(body.role).slice(0, 64)}"`] });
      if (!role.jwts.has(String(body.jwt))) return reply(403, { errors: [PERMISSION_DENIED] });
      const token = this.issueToken({
        allow: role.allow,
        namespace: '',
        ttlSeconds: role.ttlSeconds,
        maxTtlSeconds: role.ttlSeconds * 3,
      });
      return reply(200, {
        auth: {
          client_token: token,
          lease_duration: role.ttlSeconds,
          renewable: true,
          policies: ['default'],
        },
      });
    }

    if (path.startsWith('/v1/auth/approle/login') && method === 'POST') {
      const role = this.roles.get(String(body.role_id));
      if (!role || role.secretId !== body.secret_id)
        return reply(400, { errors: ['invalid role or secret ID'] });
      const token = this.issueToken({
        allow: role.allow,
        namespace: role.namespace,
        ttlSeconds: role.ttlSeconds,
        maxTtlSeconds: role.ttlSeconds * 3,
      });
      return reply(200, {
        auth: {
          client_token: token,
          lease_duration: role.ttlSeconds,
          renewable: true,
          policies: ['default'],
        },
      });
    }

    const tokenId = String(req.headers['x-vault-token'] ?? '');
    const token = this.tokens.get(tokenId);
    if (!token || token.expiresAt <= this.now) return reply(403, { errors: [PERMISSION_DENIED] });
    // A token reaches its own namespace and the ones below it.
    if (
      token.namespace !== '' &&
      namespace !== token.namespace &&
      !namespace.startsWith(`${token.namespace}/`)
    )
      return reply(403, { errors: [PERMISSION_DENIED] });

    if (path === '/v1/auth/token/lookup-self') {
      const ttl = Number.isFinite(token.expiresAt) ? Math.floor((token.expiresAt - this.now) / 1000) : 0;
      return reply(200, {
        data: { ttl, renewable: token.renewable, namespace_path: token.namespace, policies: ['default'] },
      });
    }
    if (path === '/v1/auth/token/revoke-self' && (method === 'POST' || method === 'PUT')) {
      this.tokens.delete(tokenId);
      this.revoked.push(tokenId);
      return reply(204);
    }
    if (path === '/v1/auth/token/renew-self' && (method === 'POST' || method === 'PUT')) {
      if (this.renewRefused) return reply(403, { errors: [PERMISSION_DENIED] });
      if (!token.renewable) return reply(400, { errors: ['lease is not renewable'] });
      const cap =
        token.maxTtlSeconds > 0 ? token.issuedAt + token.maxTtlSeconds * 1000 : Number.POSITIVE_INFINITY;
      token.expiresAt = Math.min(this.now + token.ttlSeconds * 1000, cap);
      const lease = Math.max(0, Math.floor((token.expiresAt - this.now) / 1000));
      return reply(200, {
        auth: { client_token: tokenId, lease_duration: lease, renewable: token.renewable },
        warnings: null,
      });
    }

    const transit = /^\/v1\/transit\/(encrypt|decrypt|rewrap|datakey\/wrapped)\/([A-Za-z0-9_.-]+)$/.exec(
      path,
    );
    if (transit && method === 'POST') {
      const [, op, name] = transit as unknown as [string, string, string];
      if (!token.allow.some((a) => a === '*' || `transit/${op}/${name}`.startsWith(a)))
        return reply(403, { errors: [PERMISSION_DENIED] });
      return this.transit(op, name, body, reply);
    }

    const m = new RegExp(`^/v1/${this.mount}/(data|metadata)(?:/(.*))?$`).exec(path);
    if (!m)
      return reply(404, { errors: [`no handler for route "${path.slice(4)}". route entry not found.`] });
    const kind = m[1];
    const logical = decodeURIComponent(m[2] ?? '');
    if (!token.allow.some((a) => a === '*' || logical.startsWith(a)))
      return reply(403, { errors: [PERMISSION_DENIED] });
    let store = this.stores.get(namespace);
    if (!store) {
      store = new Map();
      this.stores.set(namespace, store);
    }
    const entry = store.get(logical);
    const stamp = new Date(this.now).toISOString();

    if (
      kind === 'metadata' &&
      (method === 'LIST' || (method === 'GET' && url.searchParams.get('list') === 'true'))
    ) {
      const dir = logical === '' || logical.endsWith('/') ? logical : `${logical}/`;
      const keys = new Set<string>();
      for (const [p, e] of store) {
        if (!p.startsWith(dir) || e.versions.size === 0) continue;
        const rest = p.slice(dir.length);
        const slash = rest.indexOf('/');
        keys.add(slash === -1 ? rest : rest.slice(0, slash + 1));
      }
      if (keys.size === 0) return reply(404, { errors: [] });
      return reply(200, { data: { keys: [...keys].sort() } });
    }
    if (kind === 'metadata' && method === 'GET') {
      if (!entry) return reply(404, { errors: [] });
      const versions = Object.fromEntries(
        [...entry.versions].map(([n, v]) => [
          String(n),
          { created_time: v.created, deletion_time: v.deleted, destroyed: false },
        ]),
      );
      return reply(200, {
        data: { current_version: entry.current, max_versions: 0, cas_required: false, versions },
      });
    }
    if (kind === 'metadata' && method === 'DELETE') {
      store.delete(logical);
      return reply(204);
    }
    if (kind === 'data' && method === 'GET') {
      if (!entry) return reply(404, { errors: [] });
      const n = url.searchParams.has('version') ? Number(url.searchParams.get('version')) : entry.current;
      const v = entry.versions.get(n === 0 ? entry.current : n);
      if (!v) return reply(404, { errors: [] });
      const metadata = {
        created_time: v.created,
        deletion_time: v.deleted,
        destroyed: false,
        version: n === 0 ? entry.current : n,
      };
      if (v.data === null) return reply(404, { data: { data: null, metadata } });
      return reply(200, { data: { data: v.data, metadata } });
    }
    if (kind === 'data' && (method === 'POST' || method === 'PUT')) {
      const data = body.data;
      if (typeof data !== 'object' || data === null) return reply(400, { errors: ['no data provided'] });
      const cas = (body.options as { cas?: unknown } | undefined)?.cas;
      const current = entry?.current ?? 0;
      if (cas !== undefined && Number(cas) !== current)
        return reply(400, { errors: ['check-and-set parameter did not match the current version'] });
      const e = entry ?? { versions: new Map<number, Version>(), current: 0 };
      e.current += 1;
      e.versions.set(e.current, { data: data as Record<string, unknown>, created: stamp, deleted: '' });
      for (const n of [...e.versions.keys()]) if (n <= e.current - MAX_VERSIONS) e.versions.delete(n);
      store.set(logical, e);
      return reply(200, {
        data: { created_time: stamp, deletion_time: '', destroyed: false, version: e.current },
      });
    }
    if (kind === 'data' && method === 'DELETE') {
      const v = entry?.versions.get(entry.current);
      if (v) {
        v.data = null;
        v.deleted = stamp;
      }
      return reply(204);
    }
    return reply(405, { errors: ['unsupported operation'] });
  }
}
