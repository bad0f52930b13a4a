import { type Config, ConfigError, loadConfig, type SecretBackendConfig } from '../../config/load.ts';
import { migrateProviderCredentials } from '../../modules/providers/credentials-migration.ts';
import { createProvidersStore } from '../../modules/providers/providers.store.ts';
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
  options: { to: string | undefined; dryRun: boolean; force?: boolean; json: boolean },
): Promise<number> {
  if (options.to === undefined) throw new CliExit('secrets migrate: --to is required', 2);
  const config = configOrExit(env);
  if (config.secretBackend.kind === options.to)
    throw new CliExit(`secrets migrate: SECRET_BACKEND is already ${options.to}; nothing to migrate`, 2);
  const toConfig = targetConfig(env, options.to);
  const container = containerOrExit(config);
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
    const result = await migrateProviderCredentials({
      store: createProvidersStore(container.db),
      from: container.secrets,
      to: target,
      dryRun: options.dryRun,
      // --force: overwrite target values that differ from the source (e.g. rotated after the switch).
      ...(options.force ? { force: true } : {}),
      signal: controller.signal,
      onProgress: (done, total) => bar.update(done, total),
    });
    bar.done();
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
