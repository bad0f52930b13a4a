import * as z from 'zod';

/**
 * A value sent as an HTTP header: printable ASCII, no spaces, once trimmed (a secret file's final
 * newline is fine). A line break inside a token would otherwise fail every request, with an error
 * quoting the header, token and all.
 */
const HEADER_VALUE = [/^[!-~]*$/, 'printable ASCII without spaces or line breaks'] as const;

/** Secret-backend variables (SECRET_BACKEND, Vault/OpenBao, AWS, GCP), part of `envSchema`. */
export const secretBackendEnv = {
  SECRET_BACKEND: z
    .enum(['internal', 'hashicorp-vault', 'openbao', 'aws-secrets-manager', 'gcp-secret-manager'])
    .default('internal')
    .describe(
      'Where provider credentials are stored. `internal`: encrypted in the broker database (client secret only). The others keep `client_id` and `client_secret` at `<prefix>/<provider name>/…` in that secret manager; see docs/operations.md.',
    ),
  SECRET_BACKEND_FALLBACK: z
    .enum(['internal', 'hashicorp-vault', 'openbao', 'aws-secrets-manager', 'gcp-secret-manager'])
    .optional()
    .describe(
      'While migrating between backends: the old backend, read when SECRET_BACKEND has no copy of a credential (configured by the same variables). Writes go to SECRET_BACKEND only; deletes to both. Unset it once `nexus secrets migrate` has finished.',
    ),
  TOKEN_STORE: z
    .enum(['database', 'secret-backend'])
    .default('database')
    .describe(
      'Where connection credentials (access and refresh tokens, captured API keys) are kept. `database`: sealed in the `connections` row. `secret-backend`: the same sealed value at `connections/<connection id>/<write id>` in SECRET_BACKEND (under its prefix; a new path at each write), the row keeping only a marker naming it; every token fetch then costs one secret-backend read. Existing connections move with `nexus secrets migrate --tokens`; see docs/operations.md.',
    ),
  VAULT_ADDR: z
    .url({ protocol: /^https?$/ })
    .max(2048)
    .optional()
    .describe('`hashicorp-vault` / `openbao`: the server URL, e.g. `https://vault.example.com:8200`.'),
  VAULT_TOKEN: z
    .string()
    .trim()
    .max(4096)
    .regex(...HEADER_VALUE)
    .optional()
    .describe(
      '`hashicorp-vault` / `openbao`: a token (renewed before it expires). Or use AppRole. Printable ASCII; surrounding whitespace is ignored.',
    ),
  VAULT_ROLE_ID: z
    .string()
    .max(256)
    .optional()
    .describe(
      '`hashicorp-vault` / `openbao`: AppRole role id (with VAULT_SECRET_ID), instead of VAULT_TOKEN.',
    ),
  VAULT_SECRET_ID: z.string().max(4096).optional().describe('AppRole secret id, with VAULT_ROLE_ID.'),
  VAULT_K8S_ROLE: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe(
      "Vault/OpenBao Kubernetes auth: the Vault role to log in as with the pod's service-account token (instead of VAULT_TOKEN or AppRole).",
    ),
  VAULT_K8S_TOKEN_FILE: z
    .string()
    .min(1)
    .max(1024)
    .default('/var/run/secrets/kubernetes.io/serviceaccount/token')
    .describe(
      'The service-account JWT for Kubernetes auth, read again at every login (projected tokens rotate).',
    ),
  VAULT_K8S_MOUNT: z
    .string()
    .regex(/^[A-Za-z0-9_./-]{1,128}$/)
    .default('kubernetes')
    .describe('Mount path of the Kubernetes auth method.'),
  VAULT_APPROLE_MOUNT: z
    .string()
    .regex(/^[A-Za-z0-9_-][A-Za-z0-9_/-]{0,127}$/)
    .default('approle')
    .describe('Where the AppRole auth method is mounted.'),
  VAULT_MOUNT: z
    .string()
    .regex(/^[A-Za-z0-9_-][A-Za-z0-9_/-]{0,127}$/)
    .default('secret')
    .describe('The KV secrets engine mount.'),
  VAULT_KV_VERSION: z
    .enum(['1', '2'])
    .default('2')
    .describe('KV engine version of VAULT_MOUNT: `2` (versions, check-and-set writes) or `1`.'),
  VAULT_PATH_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/)
    .max(256)
    .default('nexus/providers')
    .describe('Path inside the mount under which Nexus keeps its secrets.'),
  VAULT_NAMESPACE: z
    .string()
    .trim()
    .max(256)
    .regex(...HEADER_VALUE)
    .optional()
    .describe('Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`.'),
  AWS_REGION: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/)
    .optional()
    .describe(
      '`aws-secrets-manager`: the region, e.g. `us-east-1`. Credentials come from the AWS default chain.',
    ),
  AWS_SECRET_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_+=.@-]+(\/[A-Za-z0-9_+=.@-]+)*$/)
    .max(256)
    .default('nexus/providers')
    .describe('`aws-secrets-manager`: secrets are named `<prefix>/<path>`.'),
  AWS_ENDPOINT_URL_SECRETS_MANAGER: z
    .url({ protocol: /^https?$/ })
    .max(2048)
    .optional()
    .describe('`aws-secrets-manager`: endpoint override (VPC endpoint, or an emulator in tests).'),
  GCP_PROJECT_ID: z
    .string()
    .regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$|^[0-9]{1,20}$/)
    .optional()
    .describe(
      '`gcp-secret-manager`: the project id or number. Credentials are Application Default Credentials.',
    ),
  GCP_SECRET_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9-]{1,64}$/)
    .default('nexus-providers')
    .describe('`gcp-secret-manager`: secret ids are `<prefix>_<encoded path>`.'),
  GCP_SECRET_MANAGER_ENDPOINT: z
    .string()
    .regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/)
    .max(253)
    .optional()
    .describe('`gcp-secret-manager`: API endpoint `host[:port]` override (regional or private endpoint).'),
};
