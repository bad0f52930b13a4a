/**
 * Helpers for the end-to-end CLI tests: run `nexus` as a child process with a minimal
 * environment, wait on its output with bounded timeouts, and reach into the test database
 * directly (to tamper with it, or to read ciphertexts) on SQLite and PostgreSQL alike.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import pg from 'pg';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config/load.ts';
import { buildContainer, type Container } from '../src/container.ts';
import { openDatabase } from '../src/db/client.ts';
import { migrate } from '../src/db/migrate.ts';
import { createLogger } from '../src/http/logger.ts';
import { DIALECT, type TestDatabase } from './harness.ts';

export { freePort } from './free-port.ts';

export const REPO_ROOT = resolve(import.meta.dirname, '../../..');
export const NEXUS_BIN = join(REPO_ROOT, 'apps/broker/bin/nexus.js');

/** An admin key as `nexus admin-keys create` and the development bootstrap print it. */
export const ADMIN_KEY_PATTERN = /nxa_[a-f0-9]{16}_[A-Za-z0-9_-]{43}/;

/** The only variables a child inherits from us: everything else is given explicitly per test. */
export function baseEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? tmpdir() };
}

export const newKeyBase64 = () => randomBytes(32).toString('base64');

/** ENCRYPTION_KEY and STATE_KEY, fresh. */
export function envKeys(): { ENCRYPTION_KEY: string; STATE_KEY: string } {
  return { ENCRYPTION_KEY: newKeyBase64(), STATE_KEY: newKeyBase64() };
}

/**
 * How long a one-shot command may take, start to exit. They finish in well under a second; the
 * margin is for a loaded machine. A command that has done its work but does not exit (an open
 * handle) fails here instead of stalling the suite.
 */
export const EXIT_TIMEOUT_MS = 10_000;

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliProcess {
  readonly child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `pattern` in the stream; rejects on exit or timeout. */
  waitFor(stream: 'stdout' | 'stderr', pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Waits for the exit; on timeout kills the child (SIGKILL) and rejects. */
  wait(timeoutMs?: number): Promise<CliResult>;
  kill(signal: NodeJS.Signals): void;
  readonly exited: boolean;
}

const live = new Set<ChildProcessWithoutNullStreams>();

/** Kills (SIGKILL, by pid) every child started by this test file that is still running. */
export function killAllChildren(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  live.clear();
}

const describeOutput = (p: { stdout(): string; stderr(): string }) =>
  `\n--- stdout ---\n${p.stdout()}\n--- stderr ---\n${p.stderr()}`;

/** Starts `nexus ...args` with exactly `env`, from the repository root. */
export function spawnCli(args: readonly string[], env: Record<string, string>, input?: string): CliProcess {
  const child = spawn(process.execPath, [NEXUS_BIN, ...args], {
    cwd: REPO_ROOT,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  live.add(child);
  child.stdin.end(input);
  let out = '';
  let err = '';
  let result: CliResult | undefined;
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const l of [...listeners]) l();
  };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    out += chunk;
    notify();
  });
  child.stderr.on('data', (chunk: string) => {
    err += chunk;
    notify();
  });
  const exit = new Promise<CliResult>((resolveExit) => {
    // 'close' fires after the exit and after both pipes are drained, so the output is complete.
    child.on('close', (code, signal) => {
      live.delete(child);
      result = { code, signal, stdout: out, stderr: err };
      notify();
      resolveExit(result);
    });
  });
  const proc: CliProcess = {
    child,
    stdout: () => out,
    stderr: () => err,
    get exited() {
      return result !== undefined;
    },
    kill(signal) {
      if (result === undefined) child.kill(signal);
    },
    waitFor(stream, pattern, timeoutMs = 15_000) {
      return new Promise<RegExpMatchArray>((resolveMatch, reject) => {
        const check = () => {
          const match = (stream === 'stdout' ? out : err).match(pattern);
          if (match) {
            done();
            resolveMatch(match);
          } else if (result !== undefined) {
            done();
            reject(
              new Error(
                `nexus ${args.join(' ')} exited (code ${result.code}, signal ${result.signal}) before ${stream} matched ${pattern}${describeOutput(proc)}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${stream} of nexus ${args.join(' ')} to match ${pattern}${describeOutput(proc)}`,
            ),
          );
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    async wait(timeoutMs = EXIT_TIMEOUT_MS) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(
            new Error(
              `nexus ${args.join(' ')} did not exit within ${timeoutMs} ms (killed)${describeOutput(proc)}`,
            ),
          );
        }, timeoutMs);
      });
      try {
        return await Promise.race([exit, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
  return proc;
}

/** Runs `nexus ...args` to completion (bounded). */
export function runCli(
  args: readonly string[],
  env: Record<string, string>,
  timeoutMs = EXIT_TIMEOUT_MS,
  input?: string,
): Promise<CliResult> {
  return spawnCli(args, env, input).wait(timeoutMs);
}

/** A message for assertions: the command's full output. */
export const show = (r: CliResult) =>
  `exit code ${r.code}, signal ${r.signal}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;

/** `fetch` with a bound on the time it may take. */
export function fetchWithin(url: string, init: RequestInit = {}, timeoutMs = 5_000): Promise<Response> {
  return fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
}

/**
 * Runs one SQL statement directly against the test database, outside the broker: `node:sqlite`
 * on `${dataDir}/nexus.db`, or `pg` with the DATABASE_URL the harness gave (its search_path
 * selects the test schema). `?` placeholders on both.
 */
export async function sqlOn<T = Record<string, unknown>>(
  db: TestDatabase,
  text: string,
  params: readonly unknown[] = [],
): Promise<T[]> {
  if (DIALECT === 'sqlite') {
    const raw = new DatabaseSync(join(db.dataDir, 'nexus.db'));
    try {
      raw.exec('PRAGMA busy_timeout = 15000');
      return raw.prepare(text).all(...(params as SQLInputValue[])) as T[];
    } finally {
      raw.close();
    }
  }
  const client = new pg.Client({ connectionString: db.env.DATABASE_URL });
  await client.connect();
  try {
    let n = 0;
    const result = await client.query(
      text.replace(/\?/g, () => `$${++n}`),
      [...params],
    );
    return result.rows as T[];
  } finally {
    await client.end();
  }
}

export interface Blocker {
  /** Lets the blocked write proceed (PostgreSQL) and removes the block (both). */
  release(): Promise<void>;
}

/**
 * Makes any UPDATE of the `secret_store` row at `path` stall, so that a CLI run working through
 * the table is reliably caught in the middle (an interruption that does not depend on timing).
 * PostgreSQL: this connection holds the row lock (`SELECT ... FOR UPDATE`) until `release()`.
 * SQLite (one writer, no row locks): a trigger on that row burns CPU inside the writer's
 * transaction for about `sqliteIterations / 10^7` seconds; `release()` drops the trigger, waiting
 * for the writer's lock if needed.
 */
export async function blockSecretUpdate(
  db: TestDatabase,
  path: string,
  sqliteIterations: number,
): Promise<Blocker> {
  if (DIALECT === 'sqlite') {
    const literal = `'${path.replaceAll("'", "''")}'`;
    await sqlOn(
      db,
      `CREATE TRIGGER nexus_test_stall BEFORE UPDATE ON secret_store WHEN OLD.path = ${literal} BEGIN
         SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${Math.floor(sqliteIterations)}) SELECT x FROM c);
       END`,
    );
    return {
      async release() {
        await sqlOn(db, 'DROP TRIGGER IF EXISTS nexus_test_stall');
      },
    };
  }
  const client = new pg.Client({ connectionString: db.env.DATABASE_URL });
  await client.connect();
  await client.query('BEGIN');
  const locked = await client.query('SELECT path FROM secret_store WHERE path = $1 FOR UPDATE', [path]);
  if (locked.rowCount !== 1) throw new Error(`no secret_store row ${path} to lock`);
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await client.query('ROLLBACK');
      await client.end();
    },
  };
}

/**
 * Migrates the test database in-process (setup for tests about other commands, so that they do
 * not depend on `nexus migrate`, which has tests of its own).
 */
export async function migrateDatabase(env: Record<string, string>): Promise<void> {
  const db = openDatabase(loadConfig(env).database);
  try {
    await migrate(db);
    // A query through Kysely, so that close() also ends the PostgreSQL pool: Kysely ends it only
    // once it has used it, and migrate() works on a raw session (see the report on db/client.ts).
    await sql`SELECT 1`.execute(db.kysely);
  } finally {
    await db.close();
  }
}

/** A container (no HTTP) over the test database, configured from `env` like the CLI would be. */
export function containerFor(env: Record<string, string>): Container {
  return buildContainer(loadConfig(env));
}

/** An in-process broker app over the same database the CLI uses; logs are discarded. */
export async function appFor(
  env: Record<string, string>,
): Promise<{ app: FastifyInstance; container: Container; close(): Promise<void> }> {
  const container = containerFor(env);
  const sink = new Writable({
    write(_chunk, _encoding, done) {
      done();
    },
  });
  const app = await buildApp(container, createLogger('info', sink));
  await app.ready();
  return {
    app,
    container,
    async close() {
      await app.close();
      await container.close();
    },
  };
}
