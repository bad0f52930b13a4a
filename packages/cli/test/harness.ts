/**
 * End-to-end harness: a real broker (`nexus serve` from apps/broker) on a free port, on SQLite or,
 * when NEXUS_TEST_DATABASE_URL is set, on PostgreSQL in a fresh schema; and the CLI run as a child
 * process. Every output of the CLI is checked for every secret value the suite used, and kept in
 * `transcript` for a final scan.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../../apps/broker/test/free-port.ts';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = join(here, '..', '..', '..');
export const NODE = join(REPO, 'node_modules', '.bin', 'node');
export const CLI = join(here, '..', 'bin', 'nexus.js');
const BROKER_BIN = join(REPO, 'apps', 'broker', 'bin', 'nexus.js');

/** Every secret value used by the suite: none may ever appear in CLI output. */
export const SECRETS = new Set<string>();
export const transcript: string[] = [];

export const newSecret = (label: string) => {
  const value = `${label}-${randomBytes(12).toString('hex')}`;
  SECRETS.add(value);
  return value;
};

export interface Broker {
  url: string;
  apiKey: string;
  dir: string;
  stop(): Promise<void>;
}

async function pgSchema(): Promise<{ url: string; drop(): Promise<void> } | undefined> {
  const base = process.env.NEXUS_TEST_DATABASE_URL;
  if (!base) return undefined;
  const { default: pg } = await import('pg');
  const schema = `cli_${randomBytes(6).toString('hex')}`;
  const run = async (sql: string) => {
    const client = new pg.Client({ connectionString: base });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await run(`CREATE SCHEMA ${schema}`);
  const sep = base.includes('?') ? '&' : '?';
  return {
    url: `${base}${sep}options=-c%20search_path%3D${schema}`,
    drop: () => run(`DROP SCHEMA ${schema} CASCADE`),
  };
}

export async function startBroker(): Promise<Broker> {
  const dir = mkdtempSync(join(tmpdir(), 'nexus-cli-test-'));
  const port = await freePort();
  const apiKey = newSecret('test-admin-key');
  const key = () => randomBytes(32).toString('base64');
  const pg = await pgSchema();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    NEXUS_ENV: 'test',
    NEXUS_DATA_DIR: join(dir, 'data'),
    ENCRYPTION_KEY: key(),
    STATE_KEY: key(),
    USER_SECRETS_KEY: key(),
    API_KEYS: `test:${apiKey}`,
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'warn',
    RATE_LIMIT_ENABLED: 'false',
    ...(pg ? { DATABASE_URL: pg.url, DATABASE_POOL_MAX: '5' } : {}),
  };
  const child: ChildProcess = spawn(NODE, [BROKER_BIN, 'serve'], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += String(d);
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`broker exited: ${stderr}`);
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`broker did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    apiKey,
    dir,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
      await pg?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI with the broker's connection in the environment; fails if any secret is printed.
 * `input` is written to its stdin, which is then closed, unless `holdStdin` keeps it open (and
 * silent) until the CLI exits, as a CI runner that never closes it would.
 */
export async function nexus(
  broker: Broker | undefined,
  args: string[],
  options: { env?: Record<string, string>; input?: string; cwd?: string; holdStdin?: boolean } = {},
): Promise<Run> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: broker?.dir ?? tmpdir(),
    XDG_CONFIG_HOME: join(broker?.dir ?? tmpdir(), 'config'),
    ...(broker ? { NEXUS_URL: broker.url, API_KEY: broker.apiKey } : {}),
    ...options.env,
  };
  const child = spawn(NODE, [CLI, ...args], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += String(d);
  });
  child.stderr.on('data', (d) => {
    stderr += String(d);
  });
  child.stdin.on('error', () => {}); // the CLI may close stdin before reading all of it
  if (options.holdStdin) child.stdin.write(options.input ?? '');
  else child.stdin.end(options.input ?? '');
  const code: number = await new Promise((r) => child.on('close', (c) => r(c ?? 1)));
  child.stdin.destroy();
  record(`$ nexus ${args.join(' ')}\n${stdout}\n${stderr}`);
  return { code, stdout, stderr };
}

/** Adds output to the transcript, failing at once if it holds a secret. */
export function record(text: string): void {
  transcript.push(text);
  for (const s of SECRETS)
    if (text.includes(s))
      throw new Error(`a secret value appeared in the output:\n${text.replaceAll(s, '<SECRET>')}`);
}

/** Runs a command line inside a real pseudo-terminal (`script` from util-linux). */
export function inPty(
  commandLine: string,
  env: Record<string, string>,
): { child: ChildProcess; output: () => string; done: Promise<number> } {
  const child = spawn('script', ['-qfec', commandLine, '/dev/null'], {
    env: { PATH: process.env.PATH ?? '', TERM: 'xterm', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => {
    out += String(d);
  });
  child.stderr!.on('data', (d) => {
    out += String(d);
  });
  const done = new Promise<number>((r) =>
    child.on('close', (c) => {
      record(out);
      r(c ?? 1);
    }),
  );
  return { child, output: () => out, done };
}

export async function waitFor(check: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
