import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { SecretBytes } from '../../config/secret-value.ts';
import { createKeyFile, encodeKey, newKey, updateKeyFile } from '../../crypto/key-file.ts';
import { keyIdOf } from '../../crypto/keyring.ts';
import { newTransitKey, rewrapTransitKeys, TransitError } from '../../crypto/transit.ts';
import { rewrapBlockers } from '../../modules/brokers/rings.ts';
import { rewrap } from '../../modules/keys/rewrap.ts';
import { explainBlockers, waitForBrokers } from '../../modules/keys/rewrap-guard.ts';
import { CliExit, configOrExit, containerOrExit, requireMigrated } from '../context.ts';
import { type Io, progressBar } from '../output.ts';

/** `nexus keys generate [--file PATH]`: a new 32-byte key on stdout, or a new key file. */
export function keysGenerate(io: Io, options: { file: string | undefined }): number {
  if (options.file === undefined) {
    io.out(encodeKey(newKey()));
    return 0;
  }
  const path = resolve(options.file);
  if (!createKeyFile(path, { encryptionKeys: [newKey()], stateKey: newKey(), userSecretsKeys: [newKey()] }))
    throw new CliExit(
      `${path} already exists; refusing to overwrite a key file (that would lose its keys)`,
      1,
    );
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
      'keys rotate: with KEY_PROVIDER=transit, make the new key with `nexus keys generate --transit` and roll it out like any key from the environment: add it after the current primary of ENCRYPTION_KEYS (or USER_SECRETS_KEYS) on every replica and restart, then move it first and restart, then run `nexus keys rewrap`; remove the old key once `nexus doctor` reports nothing uses it (docs/operations.md)',
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
        ...envSteps('ENCRYPTION_KEYS', 'ENCRYPTION_KEY'),
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
  const written = updateKeyFile(path, config.mode === 'production', (material) => ({
    ...material,
    encryptionKeys: [key, ...material.encryptionKeys],
  }));
  io.out(
    `Added key ${kid} as the primary in ${path}; ${written.encryptionKeys.length - 1} older key(s) still decrypt.`,
  );
  io.out(FILE_FOLLOW_STEPS);
  return 0;
}

/**
 * What to do after a key file gained a new primary. Processes following the file pick it up by
 * themselves (decision 0013); a copy of the file on another host does not.
 */
const FILE_FOLLOW_STEPS = [
  'Running brokers that use this file re-read it within seconds (at once on SIGHUP); no restart is needed.',
  'Next: `nexus keys rewrap` re-encrypts stored secrets under the new key. It waits for every running broker',
  'to take the new key, and refuses, naming the process, if one does not (a broker on another host with its',
  'own copy of this file: copy the file there first). Remove the old key from the file once `nexus doctor`',
  'reports nothing uses it.',
].join('\n');

/** The roll-out of a new key kept in the environment, across replicas (docs/operations.md). */
function envSteps(list: string, single: string): string[] {
  return [
    'Keys come from the environment, so roll it out in steps: every replica must always be able to open',
    'what any other one writes.',
    `  1. Append it to ${list} on every replica, after the current primary (replace ${single} with`,
    `     ${list}=<current>,<new>), and restart them. Every replica can now read what the new key seals.`,
    `  2. When all run with it (\`nexus doctor\` lists the live brokers and their key ids):`,
    `     Move it to the front of ${list} on every replica and restart them: it becomes the primary.`,
    '  3. Run `nexus keys rewrap`. It refuses, naming the replica, while a live one lacks the new key or',
    '     still writes with the old one; /ready of a replica that lacks a key in use answers 503 (key_ring).',
    `  4. Remove the old key from ${list} (and restart) once \`nexus doctor\` reports nothing uses it.`,
  ];
}

/** `nexus keys rewrap`: re-encrypts every stored secret under the primary; Ctrl-C stops after the current batch. */
export async function keysRewrap(
  io: Io,
  env: NodeJS.ProcessEnv,
  options: { batchSize: number; json: boolean; waitSeconds?: number },
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
    // Every live broker must hold, and write with, the primary this run re-seals under: otherwise it
    // fails on what is re-sealed, or keeps sealing under the key being retired (decision 0013).
    const target = {
      encryption: container.keys.ring.primaryKid,
      userSecrets: container.keys.userSecretsRing?.primaryKid,
    };
    const waitMs = (options.waitSeconds ?? 15) * 1000;
    const { blockers } = await waitForBrokers(container.brokers, target, { waitMs });
    if (blockers.length > 0) throw new CliExit(explainBlockers(blockers, waitMs), 1);
    const bar = progressBar(io, 'rewrap');
    const result = await rewrap(container.db, container.keys.ring, {
      batchSize: options.batchSize,
      signal: controller.signal,
      onProgress: (p) => bar.update(p.scanned, p.total),
      // Connection credentials kept in the secret backend, re-sealed under each one's refresh lease.
      tokens: container.connectionsMaintenance.backendTokens(`rewrap-${process.pid}-${randomUUID()}`),
    });
    bar.done();
    // User secrets live in the secret backend under their own key ring.
    const users =
      container.keys.userSecretsRing === undefined || result.interrupted
        ? undefined
        : await container.userSecrets.rewrap((done, total) => bar.update(done, total), controller.signal);
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
      for (const f of result.failed.slice(0, 20))
        io.err(`  not re-encrypted: ${f.table} ${f.id}: ${f.reason}`);
      if (result.interrupted || users?.interrupted)
        io.out('Interrupted: run `nexus keys rewrap` again to finish.');
    }
    // Ctrl-C during the user secrets stopped them too (2026-12-08: they ran on to the end).
    if (result.interrupted || users?.interrupted) return 130;
    // A broker started meanwhile with an older ring has written under an older key: say so.
    const late = rewrapBlockers(target, await container.brokers.live(Date.now()));
    if (late.length > 0) {
      io.err(explainBlockers(late));
      return 1;
    }
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
        ...envSteps('USER_SECRETS_KEYS', 'USER_SECRETS_KEY'),
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
  updateKeyFile(path, config.mode === 'production', (material) => ({
    ...material,
    userSecretsKeys: [key, ...(material.userSecretsKeys ?? [])],
  }));
  io.out(`Added user-secrets key ${kid} as the primary in ${path}; older user-secrets keys still decrypt.`);
  io.out(FILE_FOLLOW_STEPS);
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
