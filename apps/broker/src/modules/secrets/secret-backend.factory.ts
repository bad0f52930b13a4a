import { readFile } from 'node:fs/promises';
import type { SecretBackendConfig } from '../../config/load.ts';
import type { KeyRing } from '../../crypto/keyring.ts';
import type { Database } from '../../db/client.ts';
import { NexusError } from '../../errors/nexus-error.ts';
import { createInternalBackend } from './internal.backend.ts';
import type { SecretBackend } from './secret-backend.ts';
import { createVaultBackend } from './vault.backend.ts';

/**
 * The cloud SDKs are large (the Google client pulls in gRPC and protobuf): their backends are
 * imported on first use, and only when configured, so the embedded default starts fast and small.
 * A dynamic `import()` of the module (not a `require` of its path, which the compiled bundle cannot
 * resolve: the source files are not beside it) so the bundler keeps it as a file of its own.
 * A failed load (the import, or building the client) is not kept: the next call tries again, so a
 * passing fault does not leave the backend failing until the broker restarts.
 */
export function lazyBackend(kind: string, open: () => Promise<SecretBackend>): SecretBackend {
  let backend: Promise<SecretBackend> | undefined;
  const loaded = () => {
    backend ??= open().catch((error: unknown) => {
      backend = undefined;
      throw error;
    });
    return backend;
  };
  return {
    kind,
    keepsVersions: true,
    get: async (path, options) => (await loaded()).get(path, options),
    put: async (path, value, options) => (await loaded()).put(path, value, options),
    delete: async (path) => (await loaded()).delete(path),
    list: async (prefix, options) => (await loaded()).list(prefix, options),
    healthCheck: async () => (await loaded()).healthCheck(),
    // Nothing to close if it was never used.
    close: async () => (backend === undefined ? undefined : (await backend).close()),
  };
}

/** Builds the configured backend. No I/O: the first call (or `healthCheck`) connects. */
export function createSecretBackend(
  config: SecretBackendConfig,
  deps: { db: Database; ring: KeyRing; now: () => number },
): SecretBackend {
  switch (config.kind) {
    case 'internal':
      return createInternalBackend(deps.db, deps.ring, deps.now);
    case 'hashicorp-vault':
    case 'openbao':
      return createVaultBackend({
        kind: config.kind,
        addr: config.addr,
        mount: config.mount,
        kvVersion: config.kvVersion,
        prefix: config.prefix,
        ...(config.namespace === undefined ? {} : { namespace: config.namespace }),
        auth:
          config.auth.method === 'token'
            ? { method: 'token', token: new TextDecoder().decode(config.auth.token.reveal()) }
            : config.auth.method === 'kubernetes'
              ? {
                  method: 'kubernetes',
                  role: config.auth.role,
                  readJwt: (
                    (file: string) => () =>
                      readFile(file, 'utf8')
                  )(config.auth.tokenFile),
                  mount: config.auth.mount,
                }
              : {
                  method: 'approle',
                  roleId: config.auth.roleId,
                  secretId: new TextDecoder().decode(config.auth.secretId.reveal()),
                  mount: config.auth.mount,
                },
        now: deps.now,
      });
    case 'aws-secrets-manager':
      return lazyBackend('aws-secrets-manager', async () =>
        (await import('./aws-secrets-manager.backend.ts')).createAwsSecretsManagerBackend({
          region: config.region,
          prefix: config.prefix,
          ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
        }),
      );
    case 'gcp-secret-manager':
      return lazyBackend('gcp-secret-manager', async () =>
        (await import('./gcp-secret-manager.backend.ts')).createGcpSecretManagerBackend({
          projectId: config.projectId,
          prefix: config.prefix,
          ...(config.apiEndpoint === undefined ? {} : { apiEndpoint: config.apiEndpoint }),
        }),
      );
  }
}

/** Variables that configure each backend, for messages that say what to check. */
const VARIABLES: Record<SecretBackendConfig['kind'], string> = {
  internal: 'DATABASE_URL / NEXUS_DATA_DIR',
  'hashicorp-vault':
    'VAULT_ADDR, VAULT_TOKEN or VAULT_ROLE_ID/VAULT_SECRET_ID or VAULT_K8S_ROLE, VAULT_NAMESPACE, VAULT_MOUNT',
  openbao:
    'VAULT_ADDR, VAULT_TOKEN or VAULT_ROLE_ID/VAULT_SECRET_ID or VAULT_K8S_ROLE, VAULT_NAMESPACE, VAULT_MOUNT',
  'aws-secrets-manager':
    'AWS_REGION, AWS_ENDPOINT_URL_SECRETS_MANAGER and the AWS credentials (default chain)',
  'gcp-secret-manager': 'GCP_PROJECT_ID, GCP_SECRET_MANAGER_ENDPOINT and Application Default Credentials',
};

/**
 * An operator-facing explanation of a failed health check: what failed, the backend's own text
 * (fine on the operator's terminal; never in an API answer), and the variables and fix.
 */
export function describeBackendFailure(
  config: SecretBackendConfig,
  error: unknown,
): { message: string; fix: string } {
  const vars = VARIABLES[config.kind];
  if (!(error instanceof NexusError))
    return { message: String(error instanceof Error ? error.message : error), fix: `check ${vars}` };
  const message = `${error.message}${error.detail ? ` (${error.detail})` : ''}`;
  switch (error.code) {
    case 'secret_backend_unavailable':
      return { message, fix: `check that the server is reachable from this host; settings: ${vars}` };
    case 'secret_backend_denied':
      return {
        message,
        fix: `check the credentials and that their policy allows read, write, list and delete under the prefix; settings: ${vars}`,
      };
    case 'secret_backend_sealed':
      return { message, fix: 'unseal Vault/OpenBao (`vault operator unseal`), then start again' };
    default:
      return { message, fix: `check ${vars}` };
  }
}
