import { type ChildProcess, spawn } from 'node:child_process';
import type { Config } from '../../config/config.types.ts';
import { CliExit, configOrExit } from '../context.ts';
import type { Io } from '../output.ts';

/**
 * `nexus serve --workers N`: N broker processes on the same ports, so that one machine's cores
 * all serve requests (a broker is one thread). The kernel spreads connections over them
 * (SO_REUSEPORT, Linux); nothing passes through this process, which prepares once (the port
 * check, migrations, the development admin key: `serve` itself, in `prepare`), starts the
 * workers, restarts one that dies and stops them all on SIGTERM or SIGINT.
 *
 * What must hold across processes already holds across replicas: refreshes are single-flight
 * through leases in the database, the audit chain takes batches from several writers, and rate
 * limits count in Redis. So the workers need what replicas need: PostgreSQL, and REDIS_URL while
 * rate limits are on (each process would otherwise count alone). Only the first worker runs the
 * background jobs (any one would do: they are lease-based), and serves gRPC (grpc-js cannot
 * share its port).
 */
export async function serveWorkers(
  io: Io,
  env: NodeJS.ProcessEnv,
  options: {
    readonly workers: number;
    readonly role: string | undefined;
    readonly worker: boolean;
    readonly migrate: boolean;
    /** `nexus serve` up to its listeners: checks, migrations, admin key; then returns. */
    readonly prepare: () => Promise<void>;
  },
): Promise<number> {
  const config = configOrExit(env);
  const problems = workersProblems(config, options.workers);
  if (problems.length > 0) throw new CliExit(`nexus serve --workers: ${problems.join('; ')}`, 2);
  await options.prepare();

  const entry = process.argv[1];
  if (entry === undefined) throw new CliExit('nexus serve --workers: cannot find the nexus entry point', 1);
  const argsOf = (index: number) => [
    ...process.execArgv,
    entry,
    'serve',
    '--no-migrate',
    '--reuse-port',
    ...(options.role === undefined ? [] : ['--role', options.role]),
    ...(index === 0 && options.worker ? [] : ['--no-worker']),
  ];
  const envOf = (index: number): NodeJS.ProcessEnv => {
    if (index === 0) return env;
    const { GRPC_PORT: _grpc, ...rest } = env;
    return rest;
  };

  let stopping = false;
  const children: (ChildProcess | undefined)[] = [];
  const recentDeaths: number[] = [];
  let failed = false;
  let settle: () => void = () => {};
  const allExited = new Promise<void>((resolve) => {
    settle = resolve;
  });
  const checkAllExited = () => {
    if (stopping && children.every((c) => c === undefined)) settle();
  };

  const start = (index: number) => {
    const child = spawn(process.execPath, argsOf(index), { env: envOf(index), stdio: 'inherit' });
    children[index] = child;
    child.once('exit', (code, signal) => {
      children[index] = undefined;
      if (stopping) return checkAllExited();
      io.err(
        `nexus serve --workers: worker ${index} (pid ${child.pid}) exited (${signal ?? `code ${code}`}); starting another`,
      );
      const now = Date.now();
      recentDeaths.push(now);
      while (recentDeaths.length > 0 && recentDeaths[0]! < now - 60_000) recentDeaths.shift();
      // A worker that keeps dying will not be saved by restarting it: stop everything, loudly.
      if (recentDeaths.length > 5) {
        io.err('nexus serve --workers: more than 5 workers died within a minute; stopping');
        failed = true;
        stopAll();
        return checkAllExited();
      }
      setTimeout(() => {
        if (!stopping) start(index);
      }, 1_000).unref();
    });
  };

  const stopAll = () => {
    stopping = true;
    for (const child of children) child?.kill('SIGTERM');
  };
  const onSignal = () => {
    stopAll();
    checkAllExited();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  for (let i = 0; i < options.workers; i++) start(i);
  io.err(
    `nexus serve --workers: ${options.workers} workers (pids ${children.map((c) => c?.pid).join(', ')}) on port ${config.http.port}`,
  );
  await allExited;
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  return failed ? 1 : 0;
}

/** Why these workers could not run correctly with this configuration (empty: they can). */
export function workersProblems(config: Config, workers: number): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(workers) || workers < 1 || workers > 256)
    problems.push(`--workers is a whole number from 1 to 256 (got ${workers})`);
  if (config.database.kind !== 'postgres')
    problems.push(
      'several processes need PostgreSQL (set DATABASE_URL): with SQLite the broker is one process',
    );
  if (config.rateLimits.enabled && config.redisUrl === undefined)
    problems.push('rate limits must count across the processes: set REDIS_URL (or RATE_LIMIT_ENABLED=false)');
  if (config.http.port === 0) problems.push('PORT=0 would give each worker a different port: set PORT');
  return problems;
}
