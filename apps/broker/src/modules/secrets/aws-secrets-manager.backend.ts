import {
  CreateSecretCommand,
  DeleteSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
  type SecretsManagerClientConfig,
} from '@aws-sdk/client-secrets-manager';
import { NexusError } from '../../errors/nexus-error.ts';
import { checkPath, checkPrefix, checkValue, pageOf, type SecretBackend } from './secret-backend.ts';
import { secretError } from './secrets.errors.ts';

export interface AwsSecretsManagerOptions {
  readonly region: string;
  /** Every secret is named `<prefix>/<path>`; no trailing slash. */
  readonly prefix: string;
  /** A Secrets Manager-compatible endpoint (a VPC endpoint, or moto in tests). */
  readonly endpoint?: string;
  /** Extra client settings (tests pass static credentials); production uses the default chain. */
  readonly client?: SecretsManagerClientConfig;
  /**
   * The longest one attempt may wait for a connection, and then for the answer to move (10 s, as
   * the Vault and GCP backends): without it the SDK waits up to 300 s per attempt.
   */
  readonly timeoutMs?: number;
}

/** The name probed by `healthCheck`: reading it needs no permission beyond the prefix. */
const HEALTH_PROBE = '.nexus-health-probe';

const DENIED = new Set([
  'AccessDeniedException',
  'AccessDenied',
  'UnrecognizedClientException',
  'InvalidClientTokenId',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'ExpiredTokenException',
  'IncompleteSignature',
  'MissingAuthenticationToken',
  'CredentialsProviderError',
  // KMS refused to decrypt or encrypt with the secret's key: a permission of the broker's role.
  'DecryptionFailure',
  'EncryptionFailure',
]);
const UNAVAILABLE = new Set(['InternalServiceError', 'ThrottlingException', 'TimeoutError', 'AbortError']);
const NETWORK = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
]);

interface AwsError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: string;
}

const nameOf = (error: unknown) => (error as AwsError)?.name ?? '';

/** Maps an SDK failure onto a stable code; AWS's text (ARNs, account ids) goes to `detail` only. */
function mapError(error: unknown): never {
  const e = (error ?? {}) as AwsError;
  const detail = `aws-secrets-manager: ${e.name ?? 'Error'}: ${String(e.message ?? error).slice(0, 500)}`;
  const status = e.$metadata?.httpStatusCode;
  const name = e.name ?? '';
  if (DENIED.has(name) || status === 401 || status === 403)
    throw secretError('secret_backend_denied', { detail, cause: error });
  if (
    UNAVAILABLE.has(name) ||
    NETWORK.has(e.code ?? '') ||
    (status !== undefined && status >= 500) ||
    (status === undefined && e.$fault === undefined)
  )
    throw secretError('secret_backend_unavailable', { detail, cause: error });
  throw secretError('secret_backend_error', { detail, cause: error });
}

/**
 * AWS Secrets Manager through the official SDK. One AWS secret per path, named
 * `<prefix>/<path>`, its value stored as `SecretBinary`. Credentials come from the SDK's default
 * provider chain (environment, shared config, SSO, web identity, ECS/EC2 roles). Versions are AWS
 * `VersionId`s; superseded versions stay readable while AWS keeps them (it drops unlabelled
 * versions beyond about 100).
 */
export function createAwsSecretsManagerBackend(options: AwsSecretsManagerOptions): SecretBackend {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const client = new SecretsManagerClient({
    region: options.region,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    // Three attempts (the SDK's default retry count), each bounded.
    maxAttempts: 3,
    requestHandler: { connectionTimeout: timeoutMs, requestTimeout: timeoutMs, throwOnRequestTimeout: true },
    ...options.client,
  });
  const nameFor = (path: string) => `${options.prefix}/${path}`;
  const root = `${options.prefix}/`;

  async function read(path: string, version?: string) {
    try {
      const out = await client.send(
        new GetSecretValueCommand({
          SecretId: nameFor(path),
          ...(version === undefined ? {} : { VersionId: version }),
        }),
      );
      const value =
        out.SecretBinary ??
        (out.SecretString === undefined ? undefined : new TextEncoder().encode(out.SecretString));
      if (value === undefined || out.VersionId === undefined)
        throw secretError('secret_backend_error', { detail: 'aws-secrets-manager: answer without a value' });
      return { value: new Uint8Array(value), version: out.VersionId };
    } catch (error) {
      const name = nameOf(error);
      if (name === 'ResourceNotFoundException') return null;
      // A secret scheduled for deletion, or a version id AWS cannot parse: absent for us.
      if (name === 'InvalidRequestException' && /delet/i.test((error as AwsError).message ?? '')) return null;
      if (version !== undefined && (name === 'InvalidParameterException' || name === 'ValidationException'))
        return null;
      if (error instanceof NexusError) throw error;
      return mapError(error);
    }
  }

  async function write(path: string, value: Uint8Array, fresh: boolean): Promise<{ version: string }> {
    const SecretId = nameFor(path);
    const body = { SecretBinary: value };
    const put = async () =>
      (await client.send(new PutSecretValueCommand({ SecretId, ...body }))).VersionId ?? '';
    const create = async () =>
      (await client.send(new CreateSecretCommand({ Name: SecretId, ...body }))).VersionId ?? '';
    // A path made up for this write: create it, and add a version if it exists after all.
    if (fresh) {
      try {
        return { version: await create() };
      } catch (error) {
        if (nameOf(error) !== 'ResourceExistsException') return mapError(error);
      }
    }
    for (let attempt = 0; ; attempt++) {
      try {
        return { version: await put() };
      } catch (error) {
        if (nameOf(error) !== 'ResourceNotFoundException' || attempt > 0) return mapError(error);
      }
      try {
        return { version: await create() };
      } catch (error) {
        // Another writer created it first: write our value as a new version of theirs.
        if (nameOf(error) !== 'ResourceExistsException') return mapError(error);
      }
    }
  }

  return {
    kind: 'aws-secrets-manager',
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
        // Without the recovery window: a deleted path can be written again at once.
        await client.send(
          new DeleteSecretCommand({ SecretId: nameFor(path), ForceDeleteWithoutRecovery: true }),
        );
      } catch (error) {
        if (nameOf(error) !== 'ResourceNotFoundException') mapError(error);
      }
    },
    async list(prefix, opts = {}) {
      checkPrefix(prefix);
      // AWS matches the `name` filter by prefix but sorts by its own rules: collect, then page here.
      const full = `${root}${prefix}`;
      const paths: string[] = [];
      let NextToken: string | undefined;
      try {
        do {
          const out = await client.send(
            new ListSecretsCommand({
              MaxResults: 100,
              Filters: [{ Key: 'name', Values: [full] }],
              ...(NextToken === undefined ? {} : { NextToken }),
            }),
          );
          for (const s of out.SecretList ?? [])
            if (s.Name?.startsWith(full) && s.DeletedDate === undefined)
              paths.push(s.Name.slice(root.length));
          NextToken = out.NextToken;
        } while (NextToken);
      } catch (error) {
        mapError(error);
      }
      return pageOf(paths, opts);
    },
    async healthCheck() {
      // Reaching AWS with valid credentials answers "not found"; a missing permission answers denied.
      await read(HEALTH_PROBE);
    },
    async close() {
      client.destroy();
    },
  };
}
