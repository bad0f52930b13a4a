import { randomUUID } from 'node:crypto';
import { type Config, ConfigError, loadConfig, type SecretBackendConfig } from '../../config/load.ts';
import { BUSY_WAIT_MS, MIGRATION_LEASE_MS } from '../../modules/connections/tokens-migration.ts';
import { createSecretBackend, describeBackendFailure } from '../../modules/secrets/secret-backend.factory.ts';
import { CliExit, configOrExit, containerOrExit, requireMigrated, requireSecretBackend } from '../context.ts';
import { type Io, progressBar } from '../output.ts';

const KINDS: readonly SecretBackendConfig['kind'][] = [
  'internal',
  'hashicorp-vault',
  'openbao',
  'aws-secrets-manager',
  'gcp-secret-manager',
];

/** The target backend's settings: the same variables, with SECRET_BACKEND replaced by `--to`. */
function targetConfig(env: NodeJS.ProcessEnv, to: string): Config['secretBackend'] {
  if (!KINDS.includes(to as SecretBackendConfig['kind']))
    throw new CliExit(`secrets migrate: --to must be one of ${KINDS.join(', ')}`, 2);
  try {
    return loadConfig({ ...env, SECRET_BACKEND: to }).secretBackend;
  } catch (error) {
    if (error instanceof ConfigError)
      throw new CliExit(`secrets migrate --to ${to}: ${error.message}\n\nSee docs/configuration.md.`, 2);
    throw error;
  }
}

/**
 * `nexus secrets migrate --to KIND [--dry-run]`: copies every provider's credentials from the
 * configured SECRET_BACKEND to KIND (configured by the same variables), verifying each copy by
 * reading it back. Resumable: run it again after an interruption. Then set SECRET_BACKEND=KIND.
 */
export async function secretsMigrate(
  io: Io,
  env: NodeJS.ProcessEnv,
  options: { to: string | undefined; dryRun: boolean; force?: boolean; tokens?: boolean; json: boolean },
): Promise<number> {
  if (options.tokens) {
    if (options.to !== undefined)
      throw new CliExit(
        'secrets migrate: --tokens moves connection credentials between the database and the configured SECRET_BACKEND, and takes no --to. ' +
          'To move them to another backend: set TOKEN_STORE=database and run `nexus secrets migrate --tokens`; switch SECRET_BACKEND; ' +
          'then set TOKEN_STORE=secret-backend and run it again (see docs/operations.md).',
        2,
      );
    return tokensMigrate(io, env, { dryRun: options.dryRun, json: options.json });
  }
  if (options.to === undefined) throw new CliExit('secrets migrate: --to is required', 2);
  const config = configOrExit(env);
  if (config.secretBackend.kind === options.to)
    throw new CliExit(`secrets migrate: SECRET_BACKEND is already ${options.to}; nothing to migrate`, 2);
  const toConfig = targetConfig(env, options.to);
  const container = await containerOrExit(config);
  const target = createSecretBackend(toConfig, {
    db: container.db,
    ring: container.keys.ring,
    now: Date.now,
  });
  const controller = new AbortController();
  const onSignal = () => {
    io.err('\nstopping after the current provider; run the same command again to resume');
    controller.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await requireMigrated(container);
    await requireSecretBackend(container);
    try {
      await target.healthCheck();
    } catch (error) {
      const { message, fix } = describeBackendFailure(toConfig, error);
      throw new CliExit(`Target backend ${toConfig.kind} failed its check: ${message}\nFix: ${fix}.`, 2);
    }
    const bar = progressBar(io, options.dryRun ? 'migrate (dry run)' : 'migrate');
    // From the configured SECRET_BACKEND (container.secrets), which the providers service reads.
    const result = await container.providers.migrateCredentials({
      to: target,
      dryRun: options.dryRun,
      // --force: overwrite target values that differ from the source (e.g. rotated after the switch).
      ...(options.force ? { force: true } : {}),
      signal: controller.signal,
      onProgress: (done, total) => bar.update(done, total),
    });
    bar.done();
    // Connection credentials kept in the backend (TOKEN_STORE=secret-backend) are not copied by --to.
    const inBackend = await container.connectionsMaintenance.countInSecretBackend();
    if (inBackend > 0)
      io.err(
        `warning: ${inBackend} connection(s) keep their credentials in ${config.secretBackend.kind}; --to does not copy them. ` +
          'Move them into the database first (TOKEN_STORE=database, `nexus secrets migrate --tokens`), switch, then back (see docs/operations.md).',
      );
    if (options.json)
      io.out(
        JSON.stringify({
          from: config.secretBackend.kind,
          to: toConfig.kind,
          dry_run: options.dryRun,
          ...result,
        }),
      );
    else {
      io.out(
        `${config.secretBackend.kind} → ${toConfig.kind}${options.dryRun ? ' (dry run)' : ''}: ${result.total} provider(s), ` +
          `${options.dryRun ? `${result.wouldCopy} to copy` : `${result.copied} copied`}, ${result.unchanged} already there, ` +
          `${result.noCredentials} without credentials, ${result.failed.length} failed.`,
      );
      for (const f of result.failed.slice(0, 20)) io.err(`  ${f.name}: ${f.reason}`);
      if (result.interrupted) io.out('Interrupted: run the same command again to finish.');
      else if (result.failed.length === 0 && !options.dryRun)
        io.out(
          `Every copy was read back. Set SECRET_BACKEND=${toConfig.kind} and restart; the old copies stay in ${config.secretBackend.kind} until you remove them.`,
        );
    }
    if (result.interrupted) return 130;
    return result.failed.length > 0 ? 1 : 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await target.close();
    await container.close();
  }
}

/**
 * `nexus secrets migrate --tokens [--dry-run]`: moves every connection's credentials to where
 * TOKEN_STORE says (the row, or `connections/<id>` in SECRET_BACKEND), each under its refresh
 * lease, each backend copy read back before the row is switched. Resumable, even after `kill -9`:
 * run it again; it waits for the leases an interrupted run left, and deletes the copies it left.
 */
async function tokensMigrate(
  io: Io,
  env: NodeJS.ProcessEnv,
  options: { dryRun: boolean; json: boolean },
): Promise<number> {
  const config = configOrExit(env);
  const container = await containerOrExit(config);
  const controller = new AbortController();
  const onSignal = () => {
    io.err('\nstopping after the current connection; run the same command again to resume');
    controller.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await requireMigrated(container);
    await requireSecretBackend(container);
    const bar = progressBar(io, options.dryRun ? 'tokens (dry run)' : 'tokens');
    const result = await container.connectionsMaintenance.migrateTokens({
      backend: container.secrets,
      to: config.tokenStore,
      owner: `migrate-${process.pid}-${randomUUID()}`,
      dryRun: options.dryRun,
      signal: controller.signal,
      busyWaitMs: BUSY_WAIT_MS,
      onProgress: (done, total) => bar.update(done, total),
      onWait: (count) =>
        io.err(
          `${count} connection(s) are leased, by a refresh or by a run of this command that was interrupted ` +
            `(its leases run out ${MIGRATION_LEASE_MS / 1000} s after it stopped); waiting up to ${BUSY_WAIT_MS / 1000} s for them`,
        ),
    });
    bar.done();
    const where = config.tokenStore === 'database' ? 'the database' : `${config.secretBackend.kind}`;
    if (options.json)
      io.out(
        JSON.stringify({
          to: config.tokenStore,
          backend: config.secretBackend.kind,
          dry_run: options.dryRun,
          ...result,
        }),
      );
    else {
      io.out(
        `connection credentials → ${where}${options.dryRun ? ' (dry run)' : ''}: ${result.total} connection(s), ` +
          `${options.dryRun ? `${result.wouldMove} to move` : `${result.moved} moved`}, ${result.alreadyThere} already there, ${result.failed.length} failed.`,
      );
      if (result.leftoversDeleted > 0)
        io.out(`${result.leftoversDeleted} backend copy(ies) left by an interrupted run deleted.`);
      for (const f of result.failed.slice(0, 20)) io.err(`  ${f.id}: ${f.reason}`);
      if (result.interrupted) io.out('Interrupted: run the same command again to finish.');
    }
    if (result.interrupted) return 130;
    return result.failed.length > 0 ? 1 : 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await container.close();
  }
}
