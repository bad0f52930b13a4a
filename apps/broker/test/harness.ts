/**
 * Test harness: a real broker (real database, real key ring, real Fastify app) per test file.
 * The database is SQLite in a temporary directory, or, when NEXUS_TEST_DATABASE_URL is set
 * (scripts/services.sh run-with-postgres), a fresh PostgreSQL schema dropped afterwards.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import pg from 'pg';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config/load.ts';
import { buildContainer, type Container } from '../src/container.ts';
import { migrate } from '../src/db/migrate.ts';
import type { ErrorBody } from '../src/http/error-handler.ts';
import { createLogger } from '../src/http/logger.ts';
import { type ConnectionStores, withConnectionStores } from './connection-stores.ts';

export const TEST_PG_URL = process.env.NEXUS_TEST_DATABASE_URL;
export const DIALECT: 'sqlite' | 'postgres' = TEST_PG_URL ? 'postgres' : 'sqlite';

export const newKeyBase64 = () => randomBytes(32).toString('base64');

export interface TestDatabase {
  /** Environment entries that point a broker (or the CLI) at this database. */
  readonly env: Record<string, string>;
  readonly dataDir: string;
  drop(): Promise<void>;
}

/** A fresh, empty database: SQLite file in a temp dir, or a new PostgreSQL schema. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const dataDir = mkdtempSync(join(tmpdir(), 'nexus-test-'));
  if (TEST_PG_URL === undefined) {
    return {
      env: { NEXUS_DATA_DIR: dataDir },
      dataDir,
      drop: async () => rmSync(dataDir, { recursive: true, force: true }),
    };
  }
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_PG_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const separator = TEST_PG_URL.includes('?') ? '&' : '?';
  return {
    env: {
      NEXUS_DATA_DIR: dataDir,
      DATABASE_URL: `${TEST_PG_URL}${separator}options=-c%20search_path%3D${schema}`,
      DATABASE_POOL_MAX: '5',
    },
    dataDir,
    async drop() {
      const client = new pg.Client({ connectionString: TEST_PG_URL });
      await client.connect();
      await client.query(`DROP SCHEMA ${schema} CASCADE`);
      await client.end();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface TestBroker {
  readonly app: FastifyInstance;
  /** With its connection stores attached (connection-stores.ts, a test-only path). */
  readonly container: Container & ConnectionStores;
  readonly db: TestDatabase;
  readonly env: Record<string, string>;
  /** An admin key from API_KEYS, named `env:test`. */
  readonly adminKey: string;
  /** Every log line written so far, raw JSON text. */
  readonly logs: string[];
  /** `app.inject` with the admin key unless `key: null` (or another key) is given. */
  request(options: InjectOptions & { key?: string | null }): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

/** Starts a migrated broker on a fresh database; `env` overrides or adds variables. */
export async function startBroker(
  options: {
    env?: Record<string, string>;
    now?: () => number;
    /** The listeners of a role (split mode); default one server with every route. */
    listeners?: Parameters<typeof buildApp>[2];
    /**
     * Another broker's database (with its keys in `env`): a second broker in another mode on the
     * same rows. Dropped by the broker that created it, not by this one.
     */
    database?: TestDatabase;
  } = {},
): Promise<TestBroker> {
  const db = options.database ?? (await createTestDatabase());
  const adminKey = `test-admin-key-${randomBytes(16).toString('hex')}`;
  const env: Record<string, string> = {
    NEXUS_ENV: 'test',
    ENCRYPTION_KEY: newKeyBase64(),
    STATE_KEY: newKeyBase64(),
    USER_SECRETS_KEY: newKeyBase64(),
    API_KEYS: `test:${adminKey}`,
    LOG_LEVEL: 'info',
    // On by default in every deployment; off here so that suites about other things are not
    // throttled. rate-limit.test.ts turns it on.
    RATE_LIMIT_ENABLED: 'false',
    // A read waits for its own refresh to finish, however long a loaded machine makes it: suites
    // assert what the refresh wrote. refresh-read-fallback.test.ts tests the bound itself.
    NEXUS_REFRESH_READ_WAIT_MS: '120000',
    ...db.env,
    ...options.env,
  };
  // An empty value in `options.env` removes a default (e.g. no USER_SECRETS_KEY at all).
  for (const [name, value] of Object.entries(env)) if (value === '') delete env[name];
  const config = loadConfig(env);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const container = withConnectionStores(buildContainer(config, options.now ? { now: options.now } : {}));
  await migrate(container.db);
  const app = await buildApp(container, createLogger(config.logLevel, sink), options.listeners);
  await app.ready();
  return {
    app,
    container,
    db,
    env,
    adminKey,
    logs,
    request({ key, ...inject }) {
      const headers = { ...(inject.headers ?? {}) } as Record<string, string>;
      const credential = key === undefined ? adminKey : key;
      if (credential !== null && headers['x-api-key'] === undefined && headers.authorization === undefined) {
        headers['x-api-key'] = credential;
      }
      return app.inject({ ...inject, headers });
    },
    async close() {
      await app.close();
      await container.close();
      if (options.database === undefined) await db.drop();
    },
  };
}

/** The JSON body of a response. */
export function json<T = Record<string, unknown>>(response: LightMyRequestResponse): T {
  return JSON.parse(response.body) as T;
}

/**
 * Registers an agent with `grants` and logs it in (client credentials): its id, client secret and
 * access token. For suites about something else that need an agent caller.
 */
export async function createAgentWithToken(
  broker: Pick<TestBroker, 'request'>,
  agentId: string,
  grants: Record<string, unknown> = {},
): Promise<{ id: string; secret: string; token: string }> {
  const created = await broker.request({
    method: 'POST',
    url: '/admin/v1/agents',
    payload: { agent_id: agentId, allowed_scopes: [], ...grants },
  });
  if (created.statusCode !== 201) throw new Error(`agent ${agentId}: ${created.statusCode} ${created.body}`);
  const { id, client_secret } = json<{ id: string; client_secret: string }>(created);
  return { id, secret: client_secret, token: await agentLogin(broker, agentId, client_secret) };
}

/** An access token for an agent by client credentials (`scope`: the scopes to ask for); throws unless 200. */
export async function agentLogin(
  broker: Pick<TestBroker, 'request'>,
  agentId: string,
  clientSecret: string,
  extra: { scope?: string } = {},
): Promise<string> {
  const login = await broker.request({
    method: 'POST',
    url: '/oauth/token',
    key: null,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: agentId,
      client_secret: clientSecret,
      ...(extra.scope === undefined ? {} : { scope: extra.scope }),
    }).toString(),
  });
  if (login.statusCode !== 200) throw new Error(`agent ${agentId} login: ${login.statusCode} ${login.body}`);
  return json<{ access_token: string }>(login).access_token;
}

/**
 * Asserts that `response` is an error answer with `status` and the stable error `code` (in the
 * envelope's `error`, and in `code` where the envelope has it: the OAuth endpoints' RFC 6749 errors
 * have only `error`); the parsed body, for assertions on `message` or `details`.
 */
export function assertProblem<T extends { error: string } = ErrorBody>(
  response: LightMyRequestResponse,
  status: number,
  code: string,
  note?: string,
): T {
  const where = note === undefined ? '' : `${note}: `;
  assert.equal(response.statusCode, status, `${where}${response.body}`);
  const body = json<T & { code?: unknown }>(response);
  assert.equal(body.error, code, `${where}${response.body}`);
  if (body.code !== undefined) assert.equal(body.code, code, `${where}code repeats error`);
  return body;
}
