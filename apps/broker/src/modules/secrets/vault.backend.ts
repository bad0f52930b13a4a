import { randomUUID } from 'node:crypto';
import { NexusError } from '../../errors/nexus-error.ts';
import { createVaultSession, type VaultAuth, VaultHttp, type VaultResponse } from '../../vault/vault.http.ts';
import { checkPath, checkPrefix, checkValue, pageOf, type SecretBackend } from './secret-backend.ts';
import { secretError } from './secrets.errors.ts';

export interface VaultOptions {
  readonly kind: 'hashicorp-vault' | 'openbao';
  /** Base URL, e.g. `https://vault.example.com:8200`. */
  readonly addr: string;
  /** The KV mount, e.g. `secret`. */
  readonly mount: string;
  /** KV engine version of the mount: 2 (versions, check-and-set) or 1. */
  readonly kvVersion: 1 | 2;
  /** Every secret lives at `<prefix>/<path>` inside the mount; no leading or trailing slash. */
  readonly prefix: string;
  readonly namespace?: string;
  readonly auth: VaultAuth;
  /** Attempts for 429/5xx and network failures (default 3). */
  readonly attempts?: number;
  readonly backoffMs?: number;
  readonly timeoutMs?: number;
  readonly now?: () => number;
}

/** Attempts at a check-and-set write before giving up with `secret_conflict`. */
const CAS_ATTEMPTS = 30;
const HEALTH_PROBE = '.nexus-health-probe';
const encodeSegments = (path: string) => path.split('/').map(encodeURIComponent).join('/');
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Values are stored as one field so operators can read and write them with `vault kv`: `value`
 * holds the text when the bytes are UTF-8, `value_base64` holds anything else.
 */
function toData(value: Uint8Array): Record<string, string> {
  try {
    return { value: utf8.decode(value) };
  } catch {
    return { value_base64: Buffer.from(value).toString('base64') };
  }
}

function fromData(data: unknown): Uint8Array {
  const d = (data ?? {}) as Record<string, unknown>;
  if (typeof d.value === 'string') return new TextEncoder().encode(d.value);
  if (typeof d.value_base64 === 'string') return new Uint8Array(Buffer.from(d.value_base64, 'base64'));
  throw secretError('secret_backend_error', {
    detail: 'vault: the secret has neither a "value" nor a "value_base64" field',
  });
}

const isCasMismatch = (r: VaultResponse) =>
  r.status === 400 && r.errors.some((e) => e.includes('check-and-set parameter did not match'));

/**
 * HashiCorp Vault or OpenBao over their HTTP API: KV v2 (versions, check-and-set writes) or KV
 * v1, token or AppRole auth, namespaces, token renewal and re-login (see `vault/vault.http.ts`).
 */
export function createVaultBackend(options: VaultOptions): SecretBackend {
  const http = new VaultHttp({
    addr: options.addr,
    namespace: options.namespace,
    attempts: options.attempts ?? 3,
    backoffMs: options.backoffMs ?? 100,
    timeoutMs: options.timeoutMs ?? 10_000,
  });
  const session = createVaultSession(http, options.auth, options.now ?? Date.now);
  const mount = options.mount.replace(/^\/+|\/+$/g, '');
  const prefix = options.prefix.replace(/^\/+|\/+$/g, '');
  const full = (path: string) => (prefix === '' ? path : `${prefix}/${path}`);
  const v2 = options.kvVersion === 2;
  const dataUrl = (path: string) => `/v1/${mount}/${v2 ? 'data/' : ''}${encodeSegments(full(path))}`;

  const call = (method: string, url: string, body?: unknown) => session.request(method, url, body);
  /**
   * Whether a 404 means "nothing there". Vault answers a missing secret with an empty `errors`
   * list; a 404 that carries errors ("no handler for route": a wrong mount or path prefix) is a
   * misconfiguration, never an absent secret.
   */
  const absent = (r: VaultResponse): boolean => {
    if (r.status !== 404) return false;
    if (r.errors.length === 0) return true;
    throw secretError('secret_backend_unavailable', {
      detail: `vault: HTTP 404: ${r.errors.join('; ').slice(0, 500)}`,
    });
  };
  let listWithGet = false;

  async function read(path: string, version?: string) {
    const query = v2 && version !== undefined ? `?version=${encodeURIComponent(version)}` : '';
    if (v2 && version !== undefined && !/^[1-9][0-9]{0,9}$/.test(version)) return null;
    const r = await call('GET', `${dataUrl(path)}${query}`);
    if (absent(r)) return null;
    if (r.status !== 200) throw http.failure(r);
    const body = r.body as { data?: { data?: unknown; metadata?: { version?: number } } };
    if (v2) {
      // A soft-deleted or destroyed version answers with `data: null`.
      if (body.data?.data === null || body.data?.data === undefined) return null;
      return { value: fromData(body.data.data), version: String(body.data.metadata?.version ?? '') };
    }
    const data = body.data as Record<string, unknown> | undefined;
    const current = typeof data?.nexus_version === 'string' ? data.nexus_version : '';
    if (version !== undefined && version !== current) return null;
    return { value: fromData(data), version: current };
  }

  async function currentVersion(path: string): Promise<number> {
    const r = await call('GET', `/v1/${mount}/metadata/${encodeSegments(full(path))}`);
    if (absent(r)) return 0;
    if (r.status !== 200) throw http.failure(r);
    return Number((r.body as { data?: { current_version?: number } }).data?.current_version ?? 0);
  }

  async function writeV2(path: string, value: Uint8Array): Promise<{ version: string }> {
    let cas = await currentVersion(path);
    for (let attempt = 1; ; attempt++) {
      const r = await call('POST', dataUrl(path), { options: { cas }, data: toData(value) });
      if (r.status === 200 || r.status === 204) {
        return { version: String((r.body as { data?: { version?: number } }).data?.version ?? cas + 1) };
      }
      if (!isCasMismatch(r)) throw http.failure(r);
      // Another writer won: write on top of theirs (the last write wins, as with `internal`).
      if (attempt >= CAS_ATTEMPTS)
        throw secretError('secret_conflict', { detail: `vault: ${CAS_ATTEMPTS} check-and-set conflicts` });
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));
      cas = await currentVersion(path);
    }
  }

  async function writeV1(path: string, value: Uint8Array): Promise<{ version: string }> {
    // KV v1 keeps no versions: a random id stored beside the value tells writes apart.
    const version = randomUUID();
    const r = await call('POST', dataUrl(path), { ...toData(value), nexus_version: version });
    if (r.status !== 200 && r.status !== 204) throw http.failure(r);
    return { version };
  }

  /** Every secret path below `dir` (`''` for the prefix root), depth first. */
  async function walk(dir: string, out: string[]): Promise<void> {
    const base =
      dir === '' ? prefix : prefix === '' ? dir.replace(/\/$/, '') : `${prefix}/${dir.replace(/\/$/, '')}`;
    const dirUrl = `/v1/${mount}/${v2 ? 'metadata/' : ''}${base === '' ? '' : `${encodeSegments(base)}/`}`;
    let r = listWithGet ? undefined : await call('LIST', dirUrl);
    // Some proxies in front of Vault refuse the LIST verb (405, or a 400 that is not Vault's
    // JSON); `GET ?list=true` is Vault's documented equivalent. Not every server has it
    // (RustyVault reads the path instead), so LIST stays the first choice.
    if (r === undefined || r.status === 405 || (r.status === 400 && r.errors.length === 0)) {
      listWithGet = true;
      r = await call('GET', `${dirUrl}?list=true`);
    }
    if (absent(r)) return;
    if (r.status !== 200) throw http.failure(r);
    const keys = (r.body as { data?: { keys?: unknown } }).data?.keys;
    for (const key of Array.isArray(keys) ? keys : []) {
      if (typeof key !== 'string') continue;
      const child = `${dir}${key}`;
      if (key.endsWith('/')) await walk(child, out);
      else out.push(child);
    }
  }

  async function guard<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof NexusError) throw error;
      throw secretError('secret_backend_unavailable', { detail: `vault: ${String(error)}`, cause: error });
    }
  }

  return {
    kind: options.kind,
    keepsVersions: v2,
    async get(path, opts = {}) {
      checkPath(path);
      return guard(() => read(path, opts.version));
    },
    async put(path, value) {
      checkPath(path);
      checkValue(value);
      return guard(() => (v2 ? writeV2(path, value) : writeV1(path, value)));
    },
    async delete(path) {
      checkPath(path);
      await guard(async () => {
        // KV v2: the metadata endpoint removes every version, so nothing is left to undelete.
        const r = await call(
          'DELETE',
          v2 ? `/v1/${mount}/metadata/${encodeSegments(full(path))}` : dataUrl(path),
        );
        if (r.status !== 204 && r.status !== 200 && !absent(r)) throw http.failure(r);
      });
    },
    async list(listPrefix, opts = {}) {
      checkPrefix(listPrefix);
      const slash = listPrefix.lastIndexOf('/');
      const dir = listPrefix.slice(0, slash + 1);
      const paths: string[] = [];
      await guard(() => walk(dir, paths));
      return pageOf(
        paths.filter((p) => p.startsWith(listPrefix)),
        opts,
      );
    },
    async healthCheck() {
      await guard(async () => {
        await http.checkUnsealed();
        await session.ensureToken();
        // A read under the prefix proves the policy: 404 (nothing there) is fine, 403 is not, nor
        // is a 404 for a route that does not exist (a wrong mount).
        const r = await call('GET', dataUrl(HEALTH_PROBE));
        if (r.status !== 200 && !absent(r)) throw http.failure(r);
      });
    },
    async close() {
      session.close();
      http.close();
    },
  };
}
