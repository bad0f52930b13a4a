import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { SecretBytes } from '../../config/secret-value.ts';
import { encodeKey, newKey, readKeyFile, writeKeyFile } from '../../crypto/key-file.ts';
import { keyIdOf } from '../../crypto/keyring.ts';
import { newTransitKey, rewrapTransitKeys, TransitError } from '../../crypto/transit.ts';
import { rewrap } from '../../modules/keys/rewrap.ts';
import { CliExit, configOrExit, containerOrExit, requireMigrated } from '../context.ts';
import { type Io, progressBar } from '../output.ts';

/** `nexus keys generate [--file PATH]`: a new 32-byte key on stdout, or a new key file. */
export function keysGenerate(io: Io, options: { file: string | undefined }): number {
  if (options.file === undefined) {
    io.out(encodeKey(newKey()));
    return 0;
  }
  const path = resolve(options.file);
  if (existsSync(path))
    throw new CliExit(
      `${path} already exists; refusing to overwrite a key file (that would lose its keys)`,
      1,
    );
  writeKeyFile(path, { encryptionKeys: [newKey()], stateKey: newKey(), userSecretsKeys: [newKey()] });
  io.out(
    `Wrote ${path} (mode 0600). Point NEXUS_KEY_FILE at it, and back it up: losing it loses every stored secret.`,
  );
  return 0;
}

/**
 * `nexus keys generate --transit`: a new 256-bit key made by Vault Transit and printed only wrapped
 * (its plaintext never leaves Vault except into the broker's memory at start-up). Needs
 * KEY_PROVIDER=transit and the VAULT_* connection.
 */
export async function keysGenerateTransit(io: Io, env: NodeJS.ProcessEnv): Promise<number> {
  const config = configOrExit(env);
  if (config.keys.transit === undefined)
    throw new CliExit(
      'keys generate --transit: set KEY_PROVIDER=transit and the VAULT_* connection first',
      2,
    );
  try {
    io.out(await newTransitKey(config));
  } catch (error) {
    if (error instanceof TransitError) throw new CliExit(`keys generate --transit: ${error.message}`, 1);
    throw error;
  }
  return 0;
}

/**
 * `nexus keys transit-rewrap`: after the Transit key was rotated, every configured key re-wrapped
 * under its newest version (Transit's rewrap: the keys themselves do not change, so no stored
 * secret is touched). Prints the new values for the deployment's environment.
 */
export async function keysTransitRewrap(io: Io, env: NodeJS.ProcessEnv, json: boolean): Promise<number> {
  const config = configOrExit(env);
  if (config.keys.transit === undefined)
    throw new CliExit('keys transit-rewrap: only with KEY_PROVIDER=transit', 2);
  let rewrapped: Awaited<ReturnType<typeof rewrapTransitKeys>>;
  try {
    rewrapped = await rewrapTransitKeys(config);
  } catch (error) {
    if (error instanceof TransitError) throw new CliExit(`keys transit-rewrap: ${error.message}`, 1);
    throw error;
  }
  if (json) {
    io.out(JSON.stringify(Object.fromEntries(rewrapped.map((k) => [k.name, k.values.join(',')]))));
    return 0;
  }
  io.err('Re-wrapped under the newest version of the Transit key. Replace these in the environment:');
  for (const { name, values } of rewrapped) io.out(`${name}=${values.join(',')}`);
  io.err(
    'The old values keep working until the old key versions are retired in Transit (min_decryption_version).',
  );
  return 0;
}

/**
 * `nexus keys rotate`: a new primary encryption key. For a key file the file is updated in place;
 * for keys in the environment the new value is printed with the roll-out steps (the broker cannot
 * edit your deployment's environment).
 */
export function keysRotate(io: Io, env: NodeJS.ProcessEnv, options: { userSecrets?: boolean } = {}): number {
  const config = configOrExit(env);
  if (config.keys.transit !== undefined)
    throw new CliExit(
      'keys rotate: with KEY_PROVIDER=transit, make the new key with `nexus keys generate --transit`, put it first in ENCRYPTION_KEYS (or USER_SECRETS_KEYS), restart, then run `nexus keys rewrap`',
      2,
    );
  const key = newKey();
  const kid = keyIdOf(key.reveal());
  if (options.userSecrets) return rotateUserSecretsKey(io, config, key, kid);
  if (config.keys.encryptionKeys !== undefined) {
    io.out(
      [
        `New key ${kid}:`,
        '',
        `  ${encodeKey(key)}`,
        '',
        'Keys come from the environment, so roll it out in steps (no replica may see a ciphertext it cannot open):',
        '  1. Append it to ENCRYPTION_KEYS on every replica (current primary stays first) and restart them.',
        '  2. Move it to the front of ENCRYPTION_KEYS (it becomes the primary) and restart them.',
        '  3. Run `nexus keys rewrap` to re-encrypt stored secrets under it.',
        '  4. Remove the old key once `nexus doctor` reports no ciphertext uses it.',
      ].join('\n'),
    );
    return 0;
  }
  const path = config.keys.keyFile;
  if (path === undefined || !existsSync(path)) {
    throw new CliExit(
      'no key file to rotate: set NEXUS_KEY_FILE, or start the broker once in development to generate one',
      2,
    );
  }
  const material = readKeyFile(path, config.mode === 'production');
  writeKeyFile(path, { ...material, encryptionKeys: [key, ...material.encryptionKeys] });
  io.out(
    `Added key ${kid} as the primary in ${path}; ${material.encryptionKeys.length} older key(s) still decrypt.`,
  );
  io.out('Restart the broker, then run `nexus keys rewrap` to re-encrypt stored secrets under the new key.');
  return 0;
}

/** `nexus keys rewrap`: re-encrypts every stored secret under the primary; Ctrl-C stops after the current batch. */
export async function keysRewrap(
  io: Io,
  env: NodeJS.ProcessEnv,
  options: { batchSize: number; json: boolean },
): Promise<number> {
  const config = configOrExit(env);
  const container = await containerOrExit(config);
  const controller = new AbortController();
  const onSignal = () => {
    io.err('\nstopping after the current batch; run `nexus keys rewrap` again to resume');
    controller.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await requireMigrated(container);
    const bar = progressBar(io, 'rewrap');
    const result = await rewrap(container.db, container.keys.ring, {
      batchSize: options.batchSize,
      signal: controller.signal,
      onProgress: (p) => bar.update(p.scanned, p.total),
      // Connection credentials kept in the secret backend, re-sealed under each one's refresh lease.
      tokens: {
        credentials: container.credentialStore,
        store: container.connectionsStore,
        owner: `rewrap-${process.pid}-${randomUUID()}`,
      },
    });
    bar.done();
    // User secrets live in the secret backend under their own key ring.
    const users =
      container.keys.userSecretsRing === undefined || result.interrupted
        ? undefined
        : await container.userSecrets.rewrap((done, total) => bar.update(done, total));
    if (users !== undefined) bar.done();
    if (options.json)
      io.out(
        JSON.stringify({ primary: container.keys.ring.primaryKid, ...result, user_secrets: users ?? null }),
      );
    else {
      if (users !== undefined)
        io.out(
          `User secrets under ${container.keys.userSecretsRing!.primaryKid}: ${users.rewrapped} re-sealed, ${users.alreadyCurrent} already current, ${users.failed.length} failed.`,
        );
      for (const f of users?.failed.slice(0, 20) ?? [])
        io.err(`  cannot open user secret ${f.secret_id} version ${f.version}: ${f.reason}`);
      io.out(
        `Primary key ${container.keys.ring.primaryKid}: ${result.rewrapped} re-encrypted, ${result.alreadyCurrent} already current, ${result.failed.length} failed.`,
      );
      for (const f of result.failed.slice(0, 20)) io.err(`  cannot open ${f.table} ${f.id}: ${f.reason}`);
      if (result.interrupted) io.out('Interrupted: run `nexus keys rewrap` again to finish.');
    }
    if (result.interrupted) return 130;
    return result.failed.length > 0 || (users?.failed.length ?? 0) > 0 ? 1 : 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await container.close();
  }
}

/** `nexus keys rotate --user-secrets`: the user-secrets ring only; the OAuth token keys stay. */
function rotateUserSecretsKey(
  io: Io,
  config: ReturnType<typeof configOrExit>,
  key: SecretBytes,
  kid: string,
): number {
  if (config.keys.userSecretsKeys !== undefined) {
    io.out(
      [
        `New user-secrets key ${kid}:`,
        '',
        `  ${encodeKey(key)}`,
        '',
        'Keys come from the environment: add it to the front of USER_SECRETS_KEYS (keep the old ones after it)',
        'on every replica, restart them, then run `nexus keys rewrap` to re-seal user secrets under it.',
      ].join('\n'),
    );
    return 0;
  }
  const path = config.keys.keyFile;
  if (path === undefined || !existsSync(path))
    throw new CliExit(
      'no key file to rotate: set NEXUS_KEY_FILE, or set USER_SECRETS_KEYS in the environment',
      2,
    );
  const material = readKeyFile(path, config.mode === 'production');
  writeKeyFile(path, { ...material, userSecretsKeys: [key, ...(material.userSecretsKeys ?? [])] });
  io.out(`Added user-secrets key ${kid} as the primary in ${path}; older user-secrets keys still decrypt.`);
  io.out('Restart the broker, then run `nexus keys rewrap` to re-seal user secrets under the new key.');
  return 0;
}

/**
 * `nexus keys rotate-signing`: a new ES256 key signs agent and session tokens from now on; the old
 * ones stay published in the JWKS until every token they signed has expired, then housekeeping
 * deletes them.
 */
export async function keysRotateSigning(io: Io, env: NodeJS.ProcessEnv, json: boolean): Promise<number> {
  const container = await containerOrExit(configOrExit(env));
  try {
    await requireMigrated(container);
    const { config } = container;
    // Longer than any token signed so far can live, plus verifiers' JWKS caching.
    const keepMs = (Math.max(config.agentTokenTtlSeconds, config.agentSessionMaxTtlSeconds) + 600) * 1000;
    const result = await container.signingKeys.rotate(keepMs);
    if (json)
      io.out(JSON.stringify({ kid: result.kid, retiring: result.retired, keep_seconds: keepMs / 1000 }));
    else
      io.out(
        `New signing key ${result.kid}. ${result.retired.length} previous key(s) stay in the JWKS for ${keepMs / 1000} s, until the tokens they signed have expired.`,
      );
    return 0;
  } finally {
    await container.close();
  }
}
