import { resolve } from 'node:path';
import { isPlainHttp, readableFile } from './checks.ts';
import type { RunMode } from './load.ts';
import type { ParsedEnv } from './schema.ts';
import { SecretBytes } from './secret-value.ts';

export type VaultAuthConfig =
  | { readonly method: 'token'; readonly token: SecretBytes }
  | {
      readonly method: 'approle';
      readonly roleId: string;
      readonly secretId: SecretBytes;
      readonly mount: string;
    }
  | {
      readonly method: 'kubernetes';
      readonly role: string;
      readonly tokenFile: string;
      readonly mount: string;
    };

/** Where provider credentials live (`SECRET_BACKEND` and its variables). */
export type SecretBackendConfig =
  | { readonly kind: 'internal' }
  | {
      readonly kind: 'hashicorp-vault' | 'openbao';
      readonly addr: string;
      readonly mount: string;
      readonly kvVersion: 1 | 2;
      readonly prefix: string;
      readonly namespace: string | undefined;
      readonly auth: VaultAuthConfig;
    }
  | {
      readonly kind: 'aws-secrets-manager';
      readonly region: string;
      readonly prefix: string;
      readonly endpoint: string | undefined;
    }
  | {
      readonly kind: 'gcp-secret-manager';
      readonly projectId: string;
      readonly prefix: string;
      readonly apiEndpoint: string | undefined;
    };

const secretBytes = (text: string) => new SecretBytes(new TextEncoder().encode(text));

/** Cross-field rules of the secret backend variables; pushes one problem per missing piece. */
export function parseSecretBackend(
  e: ParsedEnv,
  mode: RunMode,
  problems: string[],
  cwd: string,
): SecretBackendConfig | undefined {
  const kind = e.SECRET_BACKEND;
  if (kind === 'hashicorp-vault' || kind === 'openbao') {
    const before = problems.length;
    if (e.VAULT_ADDR === undefined)
      problems.push(
        `VAULT_ADDR: required with SECRET_BACKEND=${kind}: the server URL, e.g. https://vault.example.com:8200`,
      );
    else if (
      mode === 'production' &&
      isPlainHttp(e.VAULT_ADDR) &&
      !/^http:\/\/(127\.|localhost|\[::1\])/.test(e.VAULT_ADDR)
    )
      problems.push(
        'VAULT_ADDR: must use https in production (plain http only to a loopback agent or proxy)',
      );
    const approle = e.VAULT_ROLE_ID !== undefined || e.VAULT_SECRET_ID !== undefined;
    const kubernetes = e.VAULT_K8S_ROLE !== undefined;
    const ways = [e.VAULT_TOKEN !== undefined, approle, kubernetes].filter(Boolean).length;
    if (ways > 1)
      problems.push(
        'VAULT_TOKEN: set one way to log in to Vault: VAULT_TOKEN, or VAULT_ROLE_ID with VAULT_SECRET_ID (AppRole), or VAULT_K8S_ROLE (Kubernetes)',
      );
    else if (ways === 0)
      problems.push(
        `VAULT_TOKEN: required with SECRET_BACKEND=${kind}, or set VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole, or VAULT_K8S_ROLE for Kubernetes auth`,
      );
    else if (approle && (e.VAULT_ROLE_ID === undefined || e.VAULT_SECRET_ID === undefined))
      problems.push(
        `${e.VAULT_ROLE_ID === undefined ? 'VAULT_ROLE_ID' : 'VAULT_SECRET_ID'}: AppRole needs both VAULT_ROLE_ID and VAULT_SECRET_ID`,
      );
    else if (kubernetes && !readableFile(resolve(cwd, e.VAULT_K8S_TOKEN_FILE)))
      problems.push(
        `VAULT_K8S_TOKEN_FILE: ${e.VAULT_K8S_TOKEN_FILE} cannot be read; mount the pod's service-account token there (automountServiceAccountToken) or point VAULT_K8S_TOKEN_FILE at it`,
      );
    if (problems.length > before || e.VAULT_ADDR === undefined) return undefined;
    return {
      kind,
      addr: e.VAULT_ADDR.replace(/\/+$/, ''),
      mount: e.VAULT_MOUNT,
      kvVersion: e.VAULT_KV_VERSION === '1' ? 1 : 2,
      prefix: e.VAULT_PATH_PREFIX,
      namespace: e.VAULT_NAMESPACE,
      auth:
        e.VAULT_TOKEN !== undefined
          ? { method: 'token', token: secretBytes(e.VAULT_TOKEN) }
          : e.VAULT_K8S_ROLE !== undefined
            ? {
                method: 'kubernetes',
                role: e.VAULT_K8S_ROLE,
                tokenFile: resolve(cwd, e.VAULT_K8S_TOKEN_FILE),
                mount: e.VAULT_K8S_MOUNT,
              }
            : {
                method: 'approle',
                roleId: e.VAULT_ROLE_ID ?? '',
                secretId: secretBytes(e.VAULT_SECRET_ID ?? ''),
                mount: e.VAULT_APPROLE_MOUNT,
              },
    };
  }
  if (kind === 'aws-secrets-manager') {
    if (e.AWS_REGION === undefined) {
      problems.push('AWS_REGION: required with SECRET_BACKEND=aws-secrets-manager, e.g. us-east-1');
      return undefined;
    }
    return {
      kind,
      region: e.AWS_REGION,
      prefix: e.AWS_SECRET_PREFIX,
      endpoint: e.AWS_ENDPOINT_URL_SECRETS_MANAGER,
    };
  }
  if (kind === 'gcp-secret-manager') {
    if (e.GCP_PROJECT_ID === undefined) {
      problems.push(
        'GCP_PROJECT_ID: required with SECRET_BACKEND=gcp-secret-manager: the project that holds the secrets',
      );
      return undefined;
    }
    return {
      kind,
      projectId: e.GCP_PROJECT_ID,
      prefix: e.GCP_SECRET_PREFIX,
      apiEndpoint: e.GCP_SECRET_MANAGER_ENDPOINT,
    };
  }
  return { kind: 'internal' };
}
