import { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { NexusError } from '../../errors/nexus-error.ts';
import { checkPath, checkPrefix, checkValue, pageOf, type SecretBackend } from './secret-backend.ts';
import { secretError } from './secrets.errors.ts';

type ClientOptions = NonNullable<ConstructorParameters<typeof SecretManagerServiceClient>[0]>;

export interface GcpSecretManagerOptions {
  readonly projectId: string;
  /** Secret ids start with `<prefix>_`; letters, digits, `-` and `_` only. */
  readonly prefix: string;
  /** `host[:port]` of a Secret Manager-compatible endpoint (a regional or private endpoint). */
  readonly apiEndpoint?: string;
  /** Extra client settings (tests pass an auth client and `protocol: 'http'`); production uses ADC. */
  readonly client?: ClientOptions;
  /** Attempts per call on UNAVAILABLE / RESOURCE_EXHAUSTED (the client's own backoff), default 3. */
  readonly attempts?: number;
  /** Per-attempt timeout, default 10 s. */
  readonly timeoutMs?: number;
}

const MAX_SECRET_ID = 255;
const HEALTH_PROBE = '.nexus-health-probe';

/**
 * Secret ids allow `[A-Za-z0-9_-]` only: other characters (`/`, `.`, `_` itself) become `_` and
 * two hex digits per UTF-8 byte. The encoding is reversible and keeps prefixes, so a path
 * prefix lists as a secret-id prefix.
 */
export function encodeSecretId(path: string): string {
  let out = '';
  for (const byte of Buffer.from(path, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9-]/.test(c) ? c : `_${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

export function decodeSecretId(id: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < id.length; i++) {
    if (id[i] === '_') {
      const hex = id.slice(i + 1, i + 3);
      if (!/^[0-9a-f]{2}$/.test(hex)) return undefined;
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else bytes.push(id.charCodeAt(i));
  }
  return Buffer.from(bytes).toString('utf8');
}

/** CRC32C (Castagnoli), the checksum Secret Manager keeps beside every payload. */
export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

// gRPC status codes, which the REST fallback maps HTTP answers to.
const NOT_FOUND = 5;
const FAILED_PRECONDITION = 9;
const ALREADY_EXISTS = 6;
const DENIED = new Set([7, 16]); // PERMISSION_DENIED, UNAUTHENTICATED
const UNAVAILABLE = new Set([4, 8, 13, 14]); // DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE
const NETWORK = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
]);

interface GoogleErrorLike {
  code?: number | string;
  message?: string;
  cause?: { code?: string };
}

const codeOf = (error: unknown) => (error as GoogleErrorLike)?.code;

function mapError(error: unknown): never {
  if (error instanceof NexusError) throw error;
  const e = (error ?? {}) as GoogleErrorLike;
  const detail = `gcp-secret-manager: ${String(e.code ?? '')} ${String(e.message ?? error).slice(0, 500)}`;
  if (typeof e.code === 'number' && DENIED.has(e.code))
    throw secretError('secret_backend_denied', { detail, cause: error });
  if (
    (typeof e.code === 'number' && UNAVAILABLE.has(e.code)) ||
    (typeof e.code === 'string' && NETWORK.has(e.code)) ||
    NETWORK.has(e.cause?.code ?? '') ||
    e.code === undefined
  )
    throw secretError('secret_backend_unavailable', { detail, cause: error });
  throw secretError('secret_backend_error', { detail, cause: error });
}

/**
 * GCP Secret Manager through the official client in REST mode (`fallback: true`: HTTP/1.1 and
 * JSON, no gRPC channel). One GCP secret per path, id `<prefix>_<encoded path>`, automatic
 * replication; a write adds a version. Credentials are Application Default Credentials.
 */
export function createGcpSecretManagerBackend(options: GcpSecretManagerOptions): SecretBackend {
  /*
   * The client once it is ready (its credentials found). Each of the client's methods rethrows a
   * failed initialisation inside a `.catch` nobody handles: an unhandled rejection, which stops
   * Node (no Application Default Credentials was enough to crash `nexus serve`). So no method is
   * called before `initialize()` has succeeded; a failure fails the call as any other (the caller
   * maps it to unavailable), and the next call tries again with a new client.
   */
  let ready: Promise<SecretManagerServiceClient> | undefined;
  const connected = (): Promise<SecretManagerServiceClient> => {
    ready ??= (async () => {
      const client = new SecretManagerServiceClient({
        fallback: true,
        projectId: options.projectId,
        ...(options.apiEndpoint === undefined ? {} : { apiEndpoint: options.apiEndpoint }),
        ...options.client,
      });
      await client.initialize();
      return client;
    })().catch((error: unknown) => {
      ready = undefined;
      throw error;
    });
    return ready;
  };
  // Bounded: the client's defaults retry for up to a minute, longer than any caller waits.
  // gax counts `maxRetries` as attempts, and 0 means "until the deadline".
  const call = { timeout: options.timeoutMs ?? 10_000, maxRetries: Math.max(1, options.attempts ?? 3) };
  const project = `projects/${options.projectId}`;
  const idPrefix = `${options.prefix}_`;
  const idFor = (path: string) => {
    const id = `${idPrefix}${encodeSecretId(path)}`;
    // Secret Manager caps ids at 255 characters; the path is refused rather than truncated.
    if (id.length > MAX_SECRET_ID)
      throw secretError('secret_path_invalid', { detail: 'gcp: secret id over 255 characters' });
    return id;
  };
  const secretName = (path: string) => `${project}/secrets/${idFor(path)}`;

  async function read(path: string, version?: string) {
    if (version !== undefined && !/^[1-9][0-9]{0,18}$/.test(version)) return null;
    try {
      const [out] = await (await connected()).accessSecretVersion(
        { name: `${secretName(path)}/versions/${version ?? 'latest'}` },
        call,
      );
      const data = out.payload?.data;
      const number = out.name?.split('/').at(-1);
      if (data === undefined || data === null || number === undefined)
        throw secretError('secret_backend_error', { detail: 'gcp-secret-manager: answer without payload' });
      const value =
        typeof data === 'string' ? new Uint8Array(Buffer.from(data, 'base64')) : new Uint8Array(data);
      const sum = out.payload?.dataCrc32c;
      // The checksum catches a payload damaged between Google's storage and us.
      if (sum !== undefined && sum !== null && String(sum) !== String(crc32c(value)))
        throw secretError('secret_backend_error', {
          detail: 'gcp-secret-manager: payload checksum mismatch',
        });
      return { value, version: number };
    } catch (error) {
      if (codeOf(error) === NOT_FOUND) return null;
      // FAILED_PRECONDITION (9): the secret exists but its version is disabled or destroyed. Not
      // "absent" (a caller would go on without a credential it has): the backend cannot serve it.
      if (codeOf(error) === FAILED_PRECONDITION)
        throw secretError('secret_backend_unavailable', {
          detail: `gcp-secret-manager: ${String((error as { message?: unknown }).message ?? error).slice(0, 500)}`,
          cause: error,
        });
      return mapError(error);
    }
  }

  async function write(path: string, value: Uint8Array, fresh: boolean): Promise<{ version: string }> {
    const parent = secretName(path);
    const add = async () => {
      const [out] = await (await connected()).addSecretVersion(
        { parent, payload: { data: Buffer.from(value), dataCrc32c: crc32c(value) } },
        call,
      );
      return { version: out.name?.split('/').at(-1) ?? '' };
    };
    const create = async () => {
      try {
        await (await connected()).createSecret(
          {
            parent: project,
            secretId: idFor(path),
            secret: { replication: { automatic: {} }, labels: { 'managed-by': 'nexus' } },
          },
          call,
        );
      } catch (error) {
        // Another writer created it first: add our version to theirs.
        if (codeOf(error) !== ALREADY_EXISTS) mapError(error);
      }
    };
    // A path made up for this write: created first, saving the add that would be refused.
    if (fresh) await create();
    for (let attempt = 0; ; attempt++) {
      try {
        return await add();
      } catch (error) {
        if (codeOf(error) !== NOT_FOUND || attempt > 0) return mapError(error);
      }
      await create();
    }
  }

  return {
    kind: 'gcp-secret-manager',
    keepsVersions: true,
    async get(path, opts = {}) {
      checkPath(path);
      return read(path, opts.version);
    },
    async put(path, value, options = {}) {
      checkPath(path);
      checkValue(value);
      return write(path, value, options.fresh === true);
    },
    async delete(path) {
      checkPath(path);
      try {
        await (await connected()).deleteSecret({ name: secretName(path) }, call);
      } catch (error) {
        if (codeOf(error) !== NOT_FOUND) mapError(error);
      }
    },
    async list(prefix, opts = {}) {
      checkPrefix(prefix);
      const wanted = `${idPrefix}${encodeSecretId(prefix)}`;
      const paths: string[] = [];
      try {
        // No server-side filter: its matching rules are looser than a prefix test and not worth
        // the risk of missing a secret. Listing is for migration and doctor, not the hot path.
        for await (const secret of (await connected()).listSecretsAsync(
          { parent: project, pageSize: 250 },
          { ...call, autoPaginate: false },
        )) {
          const id = secret.name?.split('/').at(-1) ?? '';
          if (!id.startsWith(wanted)) continue;
          const path = decodeSecretId(id.slice(idPrefix.length));
          if (path !== undefined) paths.push(path);
        }
      } catch (error) {
        mapError(error);
      }
      return pageOf(paths, opts);
    },
    async healthCheck() {
      await read(HEALTH_PROBE);
    },
    async close() {
      const client = await ready?.catch(() => undefined);
      await client?.close();
    },
  };
}
