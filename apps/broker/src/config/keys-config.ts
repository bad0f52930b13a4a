import { resolve } from 'node:path';
import type { RunMode } from './load.ts';
import type { ParsedEnv } from './schema.ts';
import { parseSecretBackend, type SecretBackendConfig } from './secret-backend-config.ts';
import { decodeBase64Strict, SecretBytes } from './secret-value.ts';

/** A Vault/OpenBao Transit ciphertext: `vault:v<version>:<base64>`. */
const TRANSIT_CIPHERTEXT = /^vault:v\d{1,9}:[A-Za-z0-9+/]{16,2048}={0,2}$/;

const KEY_HINT = 'generate one with `nexus keys generate`';

/** KEY_PROVIDER=transit: the wrapped keys and the Vault that unwraps them (crypto/transit.ts). */
export interface TransitKeysConfig {
  readonly vault: Extract<SecretBackendConfig, { kind: 'openbao' | 'hashicorp-vault' }>;
  readonly mount: string;
  readonly key: string;
  readonly wrapped: {
    readonly encryption: string[];
    readonly state: string | undefined;
    readonly userSecrets: string[];
  };
}

export interface ParsedKeys {
  /** Explicit key ring from the environment, primary first; undefined when not given (or wrapped). */
  readonly encryptionKeys: SecretBytes[] | undefined;
  readonly stateKey: SecretBytes | undefined;
  readonly userSecretsKeys: SecretBytes[] | undefined;
  /** `NEXUS_KEY_FILE`, resolved; never with Transit. */
  readonly explicitKeyFile: string | undefined;
  readonly transit: TransitKeysConfig | undefined;
}

function decodeKey(name: string, value: string, problems: string[]): SecretBytes | undefined {
  const bytes = decodeBase64Strict(value);
  if (bytes === undefined || bytes.length !== 32) {
    // Never echo the value: it is (meant to be) a secret.
    problems.push(`${name}: must be 32 random bytes encoded as base64 (44 characters); ${KEY_HINT}`);
    return undefined;
  }
  return new SecretBytes(bytes);
}

/** `NAMES` (a list, each named `NAMES[i]`) if given, else `NAME`, else nothing. */
function named(
  many: string[] | undefined,
  one: string | undefined,
  name: string,
): [string, string][] | undefined {
  if (many !== undefined && many.length > 0) return many.map((v, i) => [`${name}S[${i}]`, v]);
  return one === undefined ? undefined : [[name, one]];
}

/**
 * The key variables. With KEY_PROVIDER=transit they hold Transit ciphertexts, unwrapped at start-up
 * (crypto/transit.ts); otherwise they are the keys themselves (base64).
 */
export function parseKeys(e: ParsedEnv, mode: RunMode, cwd: string, problems: string[]): ParsedKeys {
  const encryption = named(e.ENCRYPTION_KEYS, e.ENCRYPTION_KEY, 'ENCRYPTION_KEY');
  const userSecrets = named(e.USER_SECRETS_KEYS, e.USER_SECRETS_KEY, 'USER_SECRETS_KEY');
  const state = e.STATE_KEY === undefined ? undefined : ([['STATE_KEY', e.STATE_KEY]] as [string, string][]);

  if (e.KEY_PROVIDER === 'transit') {
    const wrap = (list: [string, string][] | undefined) =>
      (list ?? []).flatMap(([name, value]) => {
        if (TRANSIT_CIPHERTEXT.test(value.trim())) return [value.trim()];
        problems.push(
          `${name}: with KEY_PROVIDER=transit, a Transit ciphertext (vault:v1:...); make one with \`nexus keys generate --transit\``,
        );
        return [];
      });
    // Missing keys are reported when they are unwrapped (crypto/transit.ts): `nexus keys generate
    // --transit`, which makes them, needs this configuration without them.
    const wrapped = { encryption: wrap(encryption), state: wrap(state)[0], userSecrets: wrap(userSecrets) };
    if (e.NEXUS_KEY_FILE !== undefined)
      problems.push(
        'NEXUS_KEY_FILE: not used with KEY_PROVIDER=transit; give the wrapped keys in ENCRYPTION_KEY(S) and STATE_KEY',
      );
    const vault = parseSecretBackend({ ...e, SECRET_BACKEND: 'openbao' }, mode, problems, cwd);
    const transit =
      vault !== undefined && (vault.kind === 'openbao' || vault.kind === 'hashicorp-vault')
        ? { vault, mount: e.TRANSIT_MOUNT, key: e.TRANSIT_KEY, wrapped }
        : undefined;
    // Nothing here is a key: the unwrapped keys come later.
    return {
      encryptionKeys: undefined,
      stateKey: undefined,
      userSecretsKeys: undefined,
      explicitKeyFile: undefined,
      transit,
    };
  }

  const decode = (list: [string, string][] | undefined) =>
    list?.flatMap(([name, value]) => decodeKey(name, value, problems) ?? []);
  const encryptionKeys = decode(encryption);
  const explicitKeyFile = e.NEXUS_KEY_FILE === undefined ? undefined : resolve(cwd, e.NEXUS_KEY_FILE);
  if (mode === 'production' && explicitKeyFile === undefined) {
    if (encryptionKeys === undefined)
      problems.push(
        `ENCRYPTION_KEY: required in production (or ENCRYPTION_KEYS, or NEXUS_KEY_FILE); ${KEY_HINT} and keep it safe: losing it makes every stored secret unreadable`,
      );
    if (e.STATE_KEY === undefined)
      problems.push(`STATE_KEY: required in production (or NEXUS_KEY_FILE); ${KEY_HINT}`);
  }
  const stateKey = decode(state)?.[0];
  const userSecretsKeys = decode(userSecrets);
  if (mode === 'production')
    checkDistinct(
      [
        ...(encryption ?? []).map(([name]) => name),
        ...(state ?? []).map(([name]) => name),
        ...(userSecrets ?? []).map(([name]) => name),
      ],
      [...(encryptionKeys ?? []), ...(stateKey ? [stateKey] : []), ...(userSecretsKeys ?? [])],
      problems,
    );
  return { encryptionKeys, stateKey, userSecretsKeys, explicitKeyFile, transit: undefined };
}

/**
 * In production, keys that are not random or not distinct are refused (2026-12-07 review): one
 * whose 32 bytes are all the same (`AAAA…=`, a placeholder left in), and a key used twice, in two
 * roles (ENCRYPTION_KEY and STATE_KEY) or twice in a ring. Names only: a key is never echoed.
 */
function checkDistinct(names: readonly string[], keys: readonly SecretBytes[], problems: string[]): void {
  // Only when every value decoded: otherwise the names and keys do not line up.
  if (names.length !== keys.length) return;
  const seen = new Map<string, string>();
  keys.forEach((key, i) => {
    const bytes = key.reveal();
    const name = names[i]!;
    if (bytes.every((b) => b === bytes[0]))
      problems.push(`${name}: is not random (all its bytes are the same); ${KEY_HINT}`);
    const hex = Buffer.from(bytes).toString('hex');
    const first = seen.get(hex);
    if (first !== undefined)
      problems.push(`${name}: is the same key as ${first}; give each role and each ring entry its own key`);
    else seen.set(hex, name);
  });
}
