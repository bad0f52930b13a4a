/**
 * What benches start and stop: a free loopback port, a throw-away PostgreSQL schema, and
 * `nexus serve` / `nexus worker` processes waited for until healthy and stopped with SIGTERM.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';

export const repoRoot = join(import.meta.dirname, '..', '..');
export const nexusBin = join(repoRoot, 'apps', 'broker', 'bin', 'nexus.js');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Polls `url` until it answers below 500, for at most `timeoutMs`. */
export async function waitUntilUp(url: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const up = await fetch(url, { signal: AbortSignal.timeout(2_000) }).then(
      async (r) => {
        await r.body?.cancel();
        return r.status < 500;
      },
      () => false,
    );
    if (up) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not come up in ${timeoutMs} ms`);
}

/**
 * The PostgreSQL to use: NEXUS_TEST_DATABASE_URL (scripts/services.sh run-with-postgres), or the
 * throw-away role and database that `scripts/services.sh ensure-postgres` sets up and prints.
 */
export function postgresUrl(): string {
  const fromEnv = process.env.NEXUS_TEST_DATABASE_URL;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return execFileSync('bash', [join(repoRoot, 'scripts', 'services.sh'), 'ensure-postgres'], {
    encoding: 'utf8',
  }).trim();
}

export interface BenchSchema {
  readonly name: string;
  /** DATABASE_URL for brokers that should use only this schema. */
  readonly databaseUrl: string;
  drop(): Promise<void>;
}

/** A fresh schema, named `bench_<random>`, that `drop()` removes with everything in it. */
export async function createBenchSchema(pgUrl: string): Promise<BenchSchema> {
  const name = `bench_${randomBytes(4).toString('hex')}`;
  const run = async (sql: string) => {
    const client = new pg.Client({ connectionString: pgUrl });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await run(`CREATE SCHEMA ${name}`);
  const separator = pgUrl.includes('?') ? '&' : '?';
  return {
    name,
    databaseUrl: `${pgUrl}${separator}options=-c%20search_path%3D${name}`,
    drop: () => run(`DROP SCHEMA ${name} CASCADE`),
  };
}

/** A started `nexus` process (serve or worker). */
export interface NexusProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Set once it has exited: its exit code, or the signal's name. */
  exit: string | undefined;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with how it ended. */
  stop(graceMs?: number): Promise<string>;
}

/**
 * Spawns `nexus <args>` with exactly `env` (nothing inherited). `onLine` gets each line of its
 * output (otherwise stdout is dropped and stderr inherited); `detached` puts it in its own process
 * group, so that a Ctrl-C in the terminal reaches only the bench, which then stops it itself.
 */
export function spawnNexus(
  args: string[],
  env: Record<string, string>,
  options: { onLine?: (line: string) => void; detached?: boolean } = {},
): NexusProcess {
  const { onLine } = options;
  const child = spawn(process.execPath, [nexusBin, ...args], {
    cwd: repoRoot,
    env,
    detached: options.detached ?? false,
    stdio: ['ignore', onLine ? 'pipe' : 'ignore', onLine ? 'pipe' : 'inherit'],
  });
  if (child.pid === undefined) throw new Error(`could not start nexus ${args.join(' ')}`);
  if (onLine) {
    for (const stream of [child.stdout, child.stderr]) {
      let rest = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        const lines = (rest + chunk).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) if (line !== '') onLine(line);
      });
    }
  }
  const exited = new Promise<string>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? String(code))),
  );
  const proc: NexusProcess = {
    child,
    pid: child.pid,
    exit: undefined,
    async stop(graceMs = 20_000) {
      if (proc.exit !== undefined) return proc.exit;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const how = await exited;
      clearTimeout(timer);
      return how;
    },
  };
  void exited.then((how) => {
    proc.exit = how;
  });
  return proc;
}

/** Runs `nexus <args>` to completion with exactly `env`: its exit code and standard output. */
export function runNexus(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 300_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [nexusBin, ...args],
      { cwd: repoRoot, env, timeout: timeoutMs, maxBuffer: 16 * 2 ** 20 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
