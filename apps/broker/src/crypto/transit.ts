import { readFile } from 'node:fs/promises';
import type { Config } from '../config/load.ts';
import { SecretBytes } from '../config/secret-value.ts';
import { createVaultSession, VaultHttp, type VaultResponse } from '../vault/vault.http.ts';
import type { ResolvedKeys } from './key-file.ts';
import { followKeys } from './key-follow.ts';
import { createKeyRing } from './keyring.ts';

/**
 * KEY_PROVIDER=transit (decision 0011): the broker's keys (the key-encryption keys of the ring,
 * the state key, the user-secrets keys) are kept only as Vault/OpenBao Transit ciphertexts. At
 * start-up Transit unwraps them once; they live in this process's memory only, as with local keys.
 * Rotating the Transit key and then `nexus keys transit-rewrap` re-wraps them under the new
 * version without touching any stored secret.
 */
export class TransitError extends Error {}

type TransitConfig = NonNullable<Config['keys']['transit']>;

function client(t: TransitConfig, now: () => number = Date.now) {
  const v = t.vault;
  const auth = v.auth;
  const http = new VaultHttp({
    addr: v.addr,
    namespace: v.namespace,
    attempts: 3,
    backoffMs: 200,
    timeoutMs: 10_000,
  });
  const decode = (b: SecretBytes) => new TextDecoder().decode(b.reveal());
  const session = createVaultSession(
    http,
    auth.method === 'token'
      ? { method: 'token', token: decode(auth.token) }
      : auth.method === 'kubernetes'
        ? {
            method: 'kubernetes',
            role: auth.role,
            readJwt: () => readFile(auth.tokenFile, 'utf8'),
            mount: auth.mount,
          }
        : { method: 'approle', roleId: auth.roleId, secretId: decode(auth.secretId), mount: auth.mount },
    now,
  );
  const path = (op: string) => `/v1/${t.mount}/${op}/${encodeURIComponent(t.key)}`;
  const explain = (r: VaultResponse, what: string): TransitError => {
    if (r.status === 403)
      return new TransitError(
        `${what}: Vault refused it (permission denied): the token's policy needs update on ${t.mount}/${what.includes('rewrap') ? 'rewrap' : 'decrypt'}/${t.key}`,
      );
    if (r.status === 400)
      return new TransitError(
        `${what}: Transit could not use it with key "${t.key}" on mount "${t.mount}": is it a ciphertext of that key (TRANSIT_KEY, TRANSIT_MOUNT)?`,
      );
    if (r.status === 404)
      return new TransitError(
        `${what}: no Transit engine at ${t.mount} or no key "${t.key}" (TRANSIT_MOUNT, TRANSIT_KEY)`,
      );
    return new TransitError(`${what}: Vault answered ${r.status}`);
  };
  const call = async (op: string, body: unknown, what: string) => {
    let r: VaultResponse;
    try {
      r = await session.request('POST', path(op), body);
    } catch (error) {
      throw new TransitError(
        `${what}: Vault at ${v.addr} could not be used (${(error as { code?: string }).code ?? 'unreachable'}): check VAULT_ADDR and the VAULT_* credentials`,
      );
    }
    if (r.status !== 200) throw explain(r, what);
    return (r.body as { data?: Record<string, unknown> }).data ?? {};
  };
  return {
    async unwrap(name: string, ciphertext: string): Promise<SecretBytes> {
      const data = await call('decrypt', { ciphertext }, name);
      const key = Buffer.from(String(data.plaintext ?? ''), 'base64');
      if (key.length !== 32)
        throw new TransitError(`${name}: Transit unwrapped ${key.length} bytes, not a 32-byte key`);
      return new SecretBytes(key);
    },
    async rewrap(name: string, ciphertext: string): Promise<string> {
      return String((await call('rewrap', { ciphertext }, `${name} (rewrap)`)).ciphertext);
    },
    /** A new 256-bit key, returned only wrapped: its plaintext never leaves Vault. */
    async newWrappedKey(): Promise<string> {
      return String((await call('datakey/wrapped', { bits: 256 }, 'a new data key')).ciphertext);
    },
    close: () => session.close(),
  };
}

/** The names and wrapped values of every key variable, in configuration order. */
export function wrappedKeys(t: TransitConfig): { name: string; values: string[] }[] {
  const out = [
    {
      name: t.wrapped.encryption.length > 1 ? 'ENCRYPTION_KEYS' : 'ENCRYPTION_KEY',
      values: t.wrapped.encryption,
    },
  ];
  if (t.wrapped.state !== undefined) out.push({ name: 'STATE_KEY', values: [t.wrapped.state] });
  if (t.wrapped.userSecrets.length > 0)
    out.push({
      name: t.wrapped.userSecrets.length > 1 ? 'USER_SECRETS_KEYS' : 'USER_SECRETS_KEY',
      values: t.wrapped.userSecrets,
    });
  return out;
}

/** Unwraps the configured keys with Transit and builds the rings from them. */
export async function resolveTransitKeys(config: Config): Promise<ResolvedKeys> {
  const t = config.keys.transit;
  if (t === undefined) throw new TransitError('KEY_PROVIDER=transit is not configured');
  if (t.wrapped.encryption.length === 0)
    throw new TransitError(
      'ENCRYPTION_KEY: required with KEY_PROVIDER=transit (make one with `nexus keys generate --transit`)',
    );
  if (t.wrapped.state === undefined)
    throw new TransitError(
      'STATE_KEY: required with KEY_PROVIDER=transit (make one with `nexus keys generate --transit`)',
    );
  const transit = client(t);
  try {
    const ring = await Promise.all(
      t.wrapped.encryption.map((c, i) =>
        transit.unwrap(t.wrapped.encryption.length === 1 ? 'ENCRYPTION_KEY' : `ENCRYPTION_KEYS[${i}]`, c),
      ),
    );
    const state = await transit.unwrap('STATE_KEY', t.wrapped.state);
    const userSecrets = await Promise.all(
      t.wrapped.userSecrets.map((c, i) => transit.unwrap(`USER_SECRETS_KEYS[${i}]`, c)),
    );
    // Fixed for the life of the process: new wrapped values need a restart (decision 0013).
    const fixed = followKeys({
      ring: createKeyRing(ring, 'ENCRYPTION_KEYS (KEY_PROVIDER=transit)'),
      userSecretsRing:
        userSecrets.length === 0
          ? undefined
          : createKeyRing(userSecrets, 'USER_SECRETS_KEYS (KEY_PROVIDER=transit)'),
    });
    return { ...fixed, stateKey: state, source: { kind: 'env' }, generated: false };
  } finally {
    transit.close();
  }
}

/** `nexus keys generate --transit`: a new key, wrapped by the configured Transit key. */
export async function newTransitKey(config: Config): Promise<string> {
  const transit = client(config.keys.transit!);
  try {
    return await transit.newWrappedKey();
  } finally {
    transit.close();
  }
}

/** `nexus keys transit-rewrap`: every configured key re-wrapped under the Transit key's newest version. */
export async function rewrapTransitKeys(config: Config): Promise<{ name: string; values: string[] }[]> {
  const transit = client(config.keys.transit!);
  try {
    const out: { name: string; values: string[] }[] = [];
    for (const { name, values } of wrappedKeys(config.keys.transit!))
      out.push({ name, values: await Promise.all(values.map((v) => transit.rewrap(name, v))) });
    return out;
  } finally {
    transit.close();
  }
}
