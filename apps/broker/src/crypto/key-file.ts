import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import type { Config } from '../config/load.ts';
import { decodeBase64Strict, SecretBytes } from '../config/secret-value.ts';
import { createFileDurably, replaceFileDurably } from '../durable-file.ts';
import { type FollowedKeys, followKeys } from './key-follow.ts';
import { createKeyRing } from './keyring.ts';

/**
 * The key file: JSON `{version: 1, encryption_keys: [base64...], state_key: base64}`, primary
 * encryption key first, mode 0600. Development generates one in the data directory; production
 * uses one only when `NEXUS_KEY_FILE` names it.
 */
export interface KeyMaterial {
  readonly encryptionKeys: readonly SecretBytes[];
  readonly stateKey: SecretBytes;
  /** The user-secrets key ring (its own purpose: rotating or losing one never touches the other). */
  readonly userSecretsKeys?: readonly SecretBytes[];
}

/** The keys of a process: its rings (which may follow the key file, see `FollowedKeys`) and the state key. */
export interface ResolvedKeys extends FollowedKeys {
  readonly stateKey: SecretBytes;
  /** Where the encryption keys came from, for `keys rotate` and `doctor`. */
  readonly source: { readonly kind: 'env' } | { readonly kind: 'file'; readonly path: string };
  /** True when this call created the key file (first development start). */
  readonly generated: boolean;
}

export class KeyFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyFileError';
  }
}

export function newKey(): SecretBytes {
  return new SecretBytes(new Uint8Array(randomBytes(32)));
}

export function encodeKey(key: SecretBytes): string {
  return Buffer.from(key.reveal()).toString('base64');
}

export function readKeyFile(path: string, strictPermissions: boolean): KeyMaterial {
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0 && strictPermissions) {
    throw new KeyFileError(
      `${path} is readable by other users (mode ${mode.toString(8)}); run: chmod 600 ${path}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new KeyFileError(`${path} is not valid JSON; restore it from your backup`);
  }
  const file = parsed as {
    version?: unknown;
    encryption_keys?: unknown;
    state_key?: unknown;
    user_secrets_keys?: unknown;
  };
  const decode = (value: unknown, what: string) => {
    const bytes = typeof value === 'string' ? decodeBase64Strict(value) : undefined;
    if (bytes === undefined || bytes.length !== 32)
      throw new KeyFileError(`${path}: ${what} is not a 32-byte base64 key`);
    return new SecretBytes(bytes);
  };
  if (file.version !== 1 || !Array.isArray(file.encryption_keys) || file.encryption_keys.length === 0) {
    throw new KeyFileError(`${path}: expected {"version": 1, "encryption_keys": [...], "state_key": "..."}`);
  }
  const userSecrets = file.user_secrets_keys;
  if (userSecrets !== undefined && (!Array.isArray(userSecrets) || userSecrets.length === 0))
    throw new KeyFileError(`${path}: user_secrets_keys must be a non-empty list of base64 keys`);
  return {
    encryptionKeys: file.encryption_keys.map((k, i) => decode(k, `encryption_keys[${i}]`)),
    stateKey: decode(file.state_key, 'state_key'),
    ...(userSecrets === undefined
      ? {}
      : { userSecretsKeys: userSecrets.map((k, i) => decode(k, `user_secrets_keys[${i}]`)) }),
  };
}

function keyFileText(material: KeyMaterial): string {
  const body = JSON.stringify(
    {
      version: 1,
      encryption_keys: material.encryptionKeys.map(encodeKey),
      state_key: encodeKey(material.stateKey),
      ...(material.userSecretsKeys ? { user_secrets_keys: material.userSecretsKeys.map(encodeKey) } : {}),
    },
    null,
    2,
  );
  return `${body}\n`;
}

/**
 * Replaces the key file atomically and durably (a key the brokers start encrypting with must not
 * vanish in a power cut while the data it sealed stays), mode 0600 in a 0700 directory. Changes
 * to a file in use go through `updateKeyFile`.
 */
export function writeKeyFile(path: string, material: KeyMaterial): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  replaceFileDurably(path, keyFileText(material));
}

/**
 * Creates the key file only if there is none: two processes creating it at once never both win,
 * nor overwrite each other. False if one exists.
 */
export function createKeyFile(path: string, material: KeyMaterial): boolean {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  return createFileDurably(path, keyFileText(material));
}

/** How long a change waits for another process's change to the same key file. */
const LOCK_WAIT_MS = 5_000;

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Reads, changes and rewrites the key file while holding `PATH.lock` (created exclusively; it holds
 * `pid@host`), so that two changes at once (two `nexus keys rotate`, a rotation beside a first
 * start) never drop each other's key: the second reads what the first wrote. Waits up to 5 s for
 * the holder; a lock left by a process of this host that no longer runs is reported at once, for
 * the operator to remove (one from another host, on a shared volume, cannot be checked).
 */
export function updateKeyFile(
  path: string,
  production: boolean,
  change: (current: KeyMaterial) => KeyMaterial | undefined,
  waitMs = LOCK_WAIT_MS,
): KeyMaterial {
  const lock = `${path}.lock`;
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx', 0o600);
      try {
        writeSync(fd, `${process.pid}@${hostname()}`);
      } finally {
        closeSync(fd);
      }
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let holder = '';
    try {
      holder = readFileSync(lock, 'utf8').trim();
    } catch {}
    // An empty lock is one being written: its holder runs. One whose holder is gone is not taken
    // over here: two waiters could each remove it, one of them the other's fresh lock.
    const [pid, host] = holder.split('@');
    if (host === hostname() && /^[1-9]\d{0,9}$/.test(pid ?? '') && !isRunning(Number(pid)))
      throw new KeyFileError(
        `${lock} was left by process ${pid}, which is no longer running (it stopped while changing the key file, which it replaces whole, so the file is as it was or as it meant it). Remove ${lock} and run this again.`,
      );
    if (Date.now() >= deadline)
      throw new KeyFileError(
        `${path} is being changed by another process${holder === '' ? '' : ` (${holder.slice(0, 100)})`}; run this again once it is done. If no nexus command is running, remove ${lock}.`,
      );
    sleepSync(20);
  }
  try {
    const current = readKeyFile(path, production);
    const next = change(current);
    if (next === undefined) return current;
    writeKeyFile(path, next);
    return next;
  } finally {
    rmSync(lock, { force: true });
  }
}

/**
 * Builds the key ring from the environment or the key file; in development creates the file on
 * first start. Errors say exactly what to set or run. Rings whose keys come from the file follow
 * it: see `ResolvedKeys.reload`.
 */
export function resolveKeys(config: Config): ResolvedKeys {
  const { encryptionKeys, stateKey, keyFile, generateIfMissing } = config.keys;
  let fromFile: KeyMaterial | undefined;
  let generated = false;
  if (keyFile !== undefined && (encryptionKeys === undefined || stateKey === undefined)) {
    if (!existsSync(keyFile)) {
      if (!generateIfMissing) {
        throw new KeyFileError(
          `key file ${keyFile} does not exist. Set ENCRYPTION_KEY and STATE_KEY (generate each with \`nexus keys generate\`), or create the file with \`nexus keys generate --file ${keyFile}\``,
        );
      }
      const made = { encryptionKeys: [newKey()], stateKey: newKey(), userSecretsKeys: [newKey()] };
      // Another process may have created it since: then its keys are the ones to use.
      if (createKeyFile(keyFile, made)) {
        fromFile = made;
        generated = true;
      }
    }
    if (fromFile === undefined) {
      fromFile = readKeyFile(keyFile, config.mode === 'production');
      // A development key file from before user secrets existed gets its key now.
      if (
        fromFile.userSecretsKeys === undefined &&
        generateIfMissing &&
        config.keys.userSecretsKeys === undefined
      ) {
        fromFile = updateKeyFile(keyFile, config.mode === 'production', (current) =>
          current.userSecretsKeys === undefined ? { ...current, userSecretsKeys: [newKey()] } : undefined,
        );
      }
    }
  }
  const ringKeys = encryptionKeys ?? fromFile?.encryptionKeys;
  const state = stateKey ?? fromFile?.stateKey;
  if (ringKeys === undefined || ringKeys.length === 0 || state === undefined) {
    throw new KeyFileError('no encryption key: set ENCRYPTION_KEY and STATE_KEY, or NEXUS_KEY_FILE');
  }
  const userSecretsKeys = config.keys.userSecretsKeys ?? fromFile?.userSecretsKeys;
  const encryptionFromFile = encryptionKeys === undefined && fromFile !== undefined;
  const userSecretsFromFile =
    config.keys.userSecretsKeys === undefined && fromFile?.userSecretsKeys !== undefined;
  const origin = (fromFileRing: boolean, name: string, field: string) =>
    fromFileRing ? `${field} in the key file ${keyFile}` : name;
  const file = keyFile !== undefined && (encryptionFromFile || userSecretsFromFile) ? keyFile : undefined;
  const strict = config.mode === 'production';
  const followed = followKeys(
    {
      ring: createKeyRing(ringKeys, origin(encryptionFromFile, 'ENCRYPTION_KEYS', 'encryption_keys')),
      userSecretsRing:
        userSecretsKeys === undefined || userSecretsKeys.length === 0
          ? undefined
          : createKeyRing(
              userSecretsKeys,
              origin(userSecretsFromFile, 'USER_SECRETS_KEYS', 'user_secrets_keys'),
            ),
    },
    file === undefined
      ? undefined
      : {
          path: file,
          encryption: encryptionFromFile,
          userSecrets: userSecretsFromFile,
          read() {
            const material = readKeyFile(file, strict);
            return {
              ring: createKeyRing(material.encryptionKeys, origin(true, '', 'encryption_keys')),
              userSecretsRing:
                material.userSecretsKeys === undefined
                  ? undefined
                  : createKeyRing(material.userSecretsKeys, origin(true, '', 'user_secrets_keys')),
            };
          },
        },
  );
  return {
    ...followed,
    stateKey: state,
    source:
      encryptionKeys !== undefined || keyFile === undefined
        ? { kind: 'env' }
        : { kind: 'file', path: keyFile },
    generated,
  };
}
