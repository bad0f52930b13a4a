import type { FastifyInstance, FastifyListenOptions } from 'fastify';
import { buildApp } from '../../app.ts';
import type { Config } from '../../config/config.types.ts';
import { describeFeatureOff, featuresOff } from '../../config/features.ts';
import { originalVariableWarnings } from '../../config/original-variables.ts';
import { watchKeyFile } from '../../crypto/key-file-watch.ts';
import { isDatabaseUnavailable } from '../../db/availability.ts';
import { migrate, migrationStatus } from '../../db/migrate.ts';
import { createLogger, prettyDestination } from '../../http/logger.ts';
import { listenersFor, type Role } from '../../http/surfaces.ts';
import { applyServerTimeouts } from '../../http/timeouts.ts';
import { startPresence } from '../../modules/brokers/presence.ts';
import { startBackgroundJobs } from '../../modules/worker/runner.ts';
import {
  CliExit,
  configOrExit,
  containerOrExit,
  databaseFailure,
  requireSecretBackend,
  warnDevelopmentKeys,
} from '../context.ts';
import type { Io } from '../output.ts';
import { ensurePortsFree, type WantedPort } from '../ports.ts';

export interface ServeOptions {
  readonly migrate: boolean;
  /** Run the background jobs (refresh worker, webhooks, housekeeping) in this process. */
  readonly worker: boolean;
  /** `--role`, overriding NEXUS_ROLE. */
  readonly role?: string | undefined;
  /**
   * A worker of `serve --workers` (serve-workers.ts): its siblings share the ports
   * (SO_REUSEPORT), and the parent already checked them, migrated and said what is off.
   */
  readonly reusePort?: boolean | undefined;
  /** The parent of `serve --workers`: checks, migrations and the admin key, then return. */
  readonly prepareOnly?: boolean | undefined;
  /**
   * `nexus dev` (dev.ts): given the app before it listens, to add its pages and start its demo
   * peers; told the broker's URL once it listens, closed when the broker stops.
   */
  readonly extend?: ((app: FastifyInstance, container: Container) => Promise<ServeExtension>) | undefined;
}

export interface ServeExtension {
  ready(url: string): void;
  close(): Promise<void>;
}

const ROLES: readonly Role[] = ['all', 'gateway', 'broker'];

type Container = Awaited<ReturnType<typeof containerOrExit>>;

/** Migrates (when allowed) or refuses to run against a database with pending migrations. */
async function prepareDatabase(
  container: Container,
  logger: ReturnType<typeof createLogger>,
  allowMigrate: boolean,
): Promise<void> {
  // The first use of the database: one that cannot be reached is named, with what to do.
  const reached = <T>(first: Promise<T>) =>
    first.catch((error: unknown) => {
      throw databaseFailure(error, container.config.database);
    });
  if (container.config.autoMigrate && allowMigrate) {
    const result = await reached(migrate(container.db));
    if (result.applied.length > 0) logger.info({ applied: result.applied }, 'migrations applied');
    return;
  }
  const status = await reached(migrationStatus(container.db));
  if (status.pending.length > 0) {
    throw new CliExit(
      `pending migrations (${status.pending.join(', ')}) and automatic migration is off: run \`nexus migrate\``,
      2,
    );
  }
}

/**
 * Makes this process follow its key file (file-system events, polling, and SIGHUP) and records it
 * in the process registry with its key ids and a heartbeat (decision 0013). Returns the way to
 * stop both; the registry entry is removed then. With keys from the environment nothing is
 * followed: SIGHUP says that only a restart changes them.
 */
async function followKeysAndRegister(
  container: Container,
  logger: ReturnType<typeof createLogger>,
  role: string,
): Promise<() => Promise<void>> {
  const { keys, config } = container;
  const unlisten = keys.onReload((event) => {
    if (event.outcome === 'changed')
      logger.info(
        { reason: event.reason, encryption_keys: event.encryption, user_secrets_keys: event.userSecrets },
        'key rings reloaded from the key file',
      );
    else
      logger.error(
        { reason: event.reason, key_file: keys.follows, error: event.message },
        'the key file could not be read; the keys in use are kept',
      );
  });
  const watcher = watchKeyFile(keys);
  const onHangup = () => {
    if (keys.follows === undefined)
      logger.warn('SIGHUP: keys come from the environment; restart the process to change them');
    else if (keys.reload({ force: true, reason: 'SIGHUP' }) === 'unchanged')
      logger.info({ key_file: keys.follows }, 'SIGHUP: key file re-read, keys unchanged');
  };
  process.on('SIGHUP', onHangup);
  try {
    const presence = await startPresence({
      store: container.brokers,
      keys,
      role,
      keySource: config.keys.transit !== undefined ? 'transit' : keys.follows !== undefined ? 'file' : 'env',
      // During a database outage the background jobs report it once; a heartbeat missed then is expected.
      onError: (error) =>
        isDatabaseUnavailable(error)
          ? logger.debug('process registry heartbeat missed: database unavailable')
          : logger.warn({ err: error }, 'process registry heartbeat failed'),
    });
    return async () => {
      process.off('SIGHUP', onHangup);
      watcher.close();
      unlisten();
      await presence
        .stop()
        .catch((error: unknown) =>
          logger.warn({ err: error }, 'could not remove this process from the registry'),
        );
    };
  } catch (error) {
    process.off('SIGHUP', onHangup);
    watcher.close();
    unlisten();
    throw error;
  }
}

/**
 * One warning per variable of the original Go Nexus that is set and that Nexus does not read,
 * saying what to do instead (config/original-variables.ts). Names only: values may be secrets.
 */
/** JSON lines, or readable ones on a terminal in development (LOG_FORMAT). */
const loggerFor = (config: Config) =>
  createLogger(
    config.logLevel,
    prettyDestination(config.logFormat, {
      production: config.mode === 'production',
      terminal: process.stdout.isTTY === true,
    }),
  );

function warnOriginalVariables(env: NodeJS.ProcessEnv, logger: ReturnType<typeof createLogger>): void {
  for (const { variable, nexus, message } of originalVariableWarnings(env))
    logger.warn({ variable, nexus }, message);
}

const untilSignal = (logger: ReturnType<typeof createLogger>) =>
  new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });

/** The ports `nexus serve` listens on for this role (the same choices as below, made early). */
function portsOf(config: Config, role: Role): WantedPort[] {
  const ports: WantedPort[] = [
    { variable: 'PORT', hostVariable: 'HOST', host: config.http.host, port: config.http.port },
  ];
  if (role === 'all' && config.adminListener !== undefined)
    ports.push({ variable: 'ADMIN_PORT', hostVariable: 'ADMIN_HOST', ...config.adminListener });
  if (role !== 'broker' && config.grpc !== undefined)
    ports.push({ variable: 'GRPC_PORT', hostVariable: 'GRPC_HOST', ...config.grpc });
  return ports;
}

/** `nexus worker`: the background jobs alone, no HTTP listener (for deployments that split them). */
export async function worker(env: NodeJS.ProcessEnv, options: { migrate: boolean }): Promise<number> {
  const config = configOrExit(env);
  const logger = loggerFor(config);
  warnOriginalVariables(env, logger);
  const container = await containerOrExit(config);
  let stopFollowing: (() => Promise<void>) | undefined;
  try {
    await prepareDatabase(container, logger, options.migrate);
    await requireSecretBackend(container);
    stopFollowing = await followKeysAndRegister(container, logger, 'worker');
    const stop = startBackgroundJobs(container, logger);
    logger.info({ mode: config.mode, database: container.db.dialect }, 'nexus worker ready');
    await untilSignal(logger);
    await stop();
    return 0;
  } finally {
    await stopFollowing?.();
    await container.close();
  }
}

/** `nexus serve`: migrate (unless disabled), bootstrap an admin key in development, listen. */
export async function serve(io: Io, env: NodeJS.ProcessEnv, options: ServeOptions): Promise<number> {
  const config = configOrExit(env);
  const logger = loggerFor(config);
  // A worker of `serve --workers`: its parent said all this once.
  const sibling = options.reusePort === true;
  if (!sibling) warnOriginalVariables(env, logger);
  const role = (options.role ?? config.role) as Role;
  if (!ROLES.includes(role))
    throw new CliExit(`--role must be one of ${ROLES.join(', ')} (got ${options.role})`, 2);
  // Before keys are generated, the database migrated or an admin key printed (issue #24).
  if (!sibling) await ensurePortsFree(portsOf(config, role));
  const container = await containerOrExit(config);
  let stopFollowing: (() => Promise<void>) | undefined;
  let extension: ServeExtension | undefined;
  try {
    if (!sibling) warnDevelopmentKeys(io, container);
    await prepareDatabase(container, logger, options.migrate);
    await requireSecretBackend(container);
    if (!sibling)
      for (const off of featuresOff(config, container.keys.userSecretsRing !== undefined))
        logger.info({ feature_off: off.feature, turn_on_with: off.variable }, describeFeatureOff(off));
    // The gateway role has no admin surface: no admin key is bootstrapped there.
    if (options.prepareOnly === true) {
      if (role !== 'gateway') await bootstrapAdminKey(io, container, logger);
      return 0;
    }
    stopFollowing = await followKeysAndRegister(container, logger, role);
    if (role !== 'gateway' && !sibling) await bootstrapAdminKey(io, container, logger);
    const listeners = listenersFor(role, config.adminListener !== undefined);
    const app = await buildApp(container, logger, listeners);
    extension = await options.extend?.(app, container);
    // Node's `reusePort` (Linux, Node 24): Fastify passes its listen options on to Node's.
    await app.listen({
      host: config.http.host,
      port: config.http.port,
      ...(sibling ? { reusePort: true } : {}),
    } as FastifyListenOptions);
    // The provider catalogue is read on first use: an entry that fails its schema is left out, said then.
    if (!sibling)
      container.catalog.onFirstLoad(({ problems }) => {
        for (const problem of problems)
          logger.warn({ catalog_file: problem.file, problem: problem.message }, 'catalogue entry left out');
      });
    const address = app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : config.http.port;
    const adminServer = listeners.adminServer;
    let adminPort: number | undefined;
    if (adminServer !== undefined && config.adminListener !== undefined) {
      const { host, port: wanted } = config.adminListener;
      // The main listener's are set by buildApp; the admin one is created beside it.
      applyServerTimeouts(adminServer, config.http.timeouts);
      try {
        await new Promise<void>((resolve, reject) => {
          adminServer.once('error', reject);
          adminServer.listen({ port: wanted, host, reusePort: sibling }, () => resolve());
        });
      } catch (error) {
        await app.close();
        throw error;
      }
      const bound = adminServer.address();
      adminPort = typeof bound === 'object' && bound !== null ? bound.port : wanted;
    }
    // gRPC on its own port when GRPC_PORT is set: grpc-js cannot share Fastify's HTTP/1 listener.
    // Loaded only then: grpc-js is not paid for in start-up time and memory by brokers without gRPC.
    // gRPC is the agent API: the broker role (admin surface only) does not serve it.
    if (config.grpc !== undefined && role === 'broker')
      logger.warn(
        'GRPC_PORT is ignored by the broker role: gRPC is the agent API, served by the gateway role',
      );
    const grpc =
      config.grpc === undefined || role === 'broker'
        ? undefined
        : (await import('../../grpc/server.ts')).createGrpcServer(container, logger, {
            // gRPC serves the public surface: admin keys are refused wherever HTTP refuses them on
            // that surface (a gateway, or `all` split by ADMIN_PORT), unless allowed.
            refuseAdminKeys:
              (role === 'gateway' || config.adminListener !== undefined) && !config.publicListenerAdminKeys,
          });
    let grpcPort: number | undefined;
    try {
      grpcPort = grpc === undefined ? undefined : await grpc.listen(config.grpc!.host, config.grpc!.port);
    } catch (error) {
      await app.close();
      throw error;
    }
    const hostForUrl = (host: string) => (host.includes(':') ? `[${host}]` : host);
    logger.info(
      {
        url: `http://${hostForUrl(config.http.host)}:${port}`,
        role,
        surfaces: listeners.main,
        ...(adminPort === undefined
          ? {}
          : { admin_url: `http://${hostForUrl(config.adminListener!.host)}:${adminPort}` }),
        ...(grpcPort === undefined ? {} : { grpc: `${hostForUrl(config.grpc!.host)}:${grpcPort}` }),
        mode: config.mode,
        database: container.db.dialect,
        ready_ms: Math.round(process.uptime() * 1000),
        worker: options.worker && role !== 'gateway',
      },
      'nexus ready',
    );
    extension?.ready(`http://${hostForUrl(config.http.host)}:${port}`);
    container.rateLimiter.warm();
    // After the listener is up: the first claim and housekeeping pass do not delay readiness.
    // A gateway (DMZ) never runs background jobs: refreshes and deliveries belong to the broker role.
    const runJobs = options.worker && role !== 'gateway';
    const stopJobs = runJobs ? startBackgroundJobs(container, logger) : async () => {};
    await untilSignal(logger);
    adminServer?.closeAllConnections();
    await Promise.all([
      app.close(),
      grpc?.close(),
      adminServer === undefined ? undefined : new Promise((resolve) => adminServer.close(resolve)),
    ]);
    await stopJobs();
    return 0;
  } finally {
    await extension?.close();
    await stopFollowing?.();
    await container.close();
  }
}

async function bootstrapAdminKey(io: Io, container: Container, logger: ReturnType<typeof createLogger>) {
  if ((await container.adminKeys.countLive()) > 0) return;
  if (container.config.mode === 'production') {
    logger.warn('no admin API key exists: create one with `nexus admin-keys create --name <name>`');
    return;
  }
  const created = await container.adminKeys.create({ actor: 'system:bootstrap' }, 'bootstrap');
  // Printed once to the terminal (not the JSON log): it is the only copy.
  io.err(
    [
      '',
      'An admin API key was created for this development broker. It is shown only once:',
      '',
      `    ${created.key}`,
      '',
      'Send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`. Revoke it with',
      `\`nexus admin-keys revoke bootstrap\` once you have created your own.`,
      '',
    ].join('\n'),
  );
}
