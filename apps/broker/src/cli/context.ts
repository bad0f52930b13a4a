import { type Config, ConfigError, loadConfig } from '../config/load.ts';
import { buildContainer, type Container } from '../container.ts';
import { KeyFileError } from '../crypto/key-file.ts';
import { resolveTransitKeys, TransitError } from '../crypto/transit.ts';
import { migrationStatus } from '../db/migrate.ts';
import { postgresConnectFailure } from '../db/postgres-url.ts';
import { describeBackendFailure } from '../modules/secrets/secret-backend.factory.ts';
import type { Io } from './output.ts';

/** Thrown by commands to stop with a message and an exit code, without a stack trace. */
export class CliExit extends Error {
  readonly code: number;
  constructor(message: string, code = 1) {
    super(message);
    this.code = code;
  }
}

/**
 * A first use of PostgreSQL that failed to connect, as a `CliExit` naming the target (never the
 * password) and what to do; any other error as it is.
 */
export function databaseFailure(error: unknown, database: Config['database']): unknown {
  if (database.kind !== 'postgres') return error;
  const message = postgresConnectFailure(error, new TextDecoder().decode(database.url.reveal()));
  return message === undefined ? error : new CliExit(message, 1);
}

export function configOrExit(env: NodeJS.ProcessEnv): Config {
  try {
    return loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError)
      throw new CliExit(`${error.message}\n\nSee docs/configuration.md for every variable.`, 2);
    throw error;
  }
}

export async function containerOrExit(config: Config): Promise<Container> {
  try {
    // KEY_PROVIDER=transit: the keys are unwrapped by Vault Transit before anything uses them.
    const keys = config.keys.transit === undefined ? undefined : await resolveTransitKeys(config);
    return buildContainer(config, keys === undefined ? {} : { keys });
  } catch (error) {
    if (error instanceof KeyFileError) throw new CliExit(`Key ring: ${error.message}`, 2);
    if (error instanceof TransitError)
      throw new CliExit(`Key ring (KEY_PROVIDER=transit): ${error.message}`, 2);
    throw error;
  }
}

/** Commands other than `migrate` need an up-to-date schema; say how to get one. */
export async function requireMigrated(container: Container): Promise<void> {
  const status = await migrationStatus(container.db);
  if (status.pending.length > 0) {
    throw new CliExit(
      `The database has ${status.pending.length} pending migration(s) (${status.pending.join(', ')}). Run \`nexus migrate\` first.`,
      2,
    );
  }
}

/** Warns on every development start: these keys are for a laptop, not for production. */
export function warnDevelopmentKeys(io: Io, container: Container): void {
  const { keys, config } = container;
  if (keys.source.kind !== 'file' || config.mode === 'production') return;
  if (keys.generated) {
    io.err(
      [
        '',
        '!!! ==================================================================== !!!',
        `!!!  Generated development keys in ${keys.source.path}`,
        '!!!  They encrypt every stored secret: losing the file loses the secrets. !!!',
        '!!!  Never use generated keys in production: set ENCRYPTION_KEY and       !!!',
        '!!!  STATE_KEY (from `nexus keys generate`) and NEXUS_ENV=production.     !!!',
        '!!! ==================================================================== !!!',
        '',
      ].join('\n'),
    );
  } else {
    io.err(`warning: using development keys from ${keys.source.path} (not for production)`);
  }
}

/**
 * Start-up connectivity and permission check of the secret backend: a bad address, a refused
 * token or a sealed Vault stops the process here, with the variables to check, instead of
 * failing the first OAuth flow.
 */
export async function requireSecretBackend(container: Container): Promise<void> {
  try {
    await container.secrets.healthCheck();
  } catch (error) {
    const { message, fix } = describeBackendFailure(container.config.secretBackend, error);
    throw new CliExit(
      `Secret backend ${container.secrets.kind} (SECRET_BACKEND) failed its start-up check: ${message}\nFix: ${fix}.`,
      2,
    );
  }
  const fallback = container.secretsFallback;
  const fallbackConfig = container.config.secretBackendFallback;
  if (fallback === undefined || fallbackConfig === undefined) return;
  try {
    await fallback.healthCheck();
  } catch (error) {
    const { message, fix } = describeBackendFailure(fallbackConfig, error);
    throw new CliExit(
      `Fallback secret backend ${fallback.kind} (SECRET_BACKEND_FALLBACK) failed its start-up check: ${message}\nFix: ${fix}, or unset SECRET_BACKEND_FALLBACK if the migration is finished.`,
      2,
    );
  }
}
