/**
 * The original Go Nexus's database, for the import tests: a fresh PostgreSQL database on the test
 * server, with the schema the contract describes (fixtures/original-schema.sql), and rows written
 * the way the original wrote them (tokens sealed with AES-256-GCM under its ENCRYPTION_KEY).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as oauth from 'oauth4webapi';
import pg from 'pg';
import { REPO_ROOT } from './cli-helpers.ts';
import { TEST_PG_URL } from './harness.ts';
import { clients, REDIRECT } from './oauth-scenario.ts';
import type { OidcFixture } from './oidc-fixture.ts';

const run = promisify(execFile);

/** The test PostgreSQL server: the PostgreSQL suite's, or the one `ensure-postgres` starts. */
export async function testServerUrl(): Promise<string> {
  if (TEST_PG_URL !== undefined) return TEST_PG_URL;
  const { stdout } = await run('bash', [join(REPO_ROOT, 'scripts/services.sh'), 'ensure-postgres'], {
    timeout: 600_000,
  });
  const url = stdout.trim();
  assert.match(url, /^postgres:\/\//, 'scripts/services.sh ensure-postgres printed no URL');
  return url;
}

/** A fresh database on the test server, dropped afterwards. */
export async function freshDatabase(
  server: string,
  prefix: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } catch (error) {
    throw new Error(
      `cannot create the original's database on the test server (${(error as Error).message}): its role needs CREATEDB, which scripts/services.sh ensure-postgres grants`,
    );
  } finally {
    await admin.end();
  }
  const url = new URL(server);
  url.pathname = `/${name}`;
  url.search = '';
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: server });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** The original's sealing: base64(nonce(12) ‖ AES-256-GCM ciphertext ‖ tag(16)), no associated data. */
export function sealOriginal(key: Uint8Array, value: unknown): string {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64');
}

/** Tokens the provider really issued (authorization code + PKCE through its own pages). */
export async function login(idp: OidcFixture, client: (typeof clients)[number], account: string) {
  const insecure = { [oauth.allowInsecureRequests]: true } as const;
  const issuer = new URL(idp.issuer);
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
  const rp = { client_id: client.client_id };
  const auth =
    client.token_endpoint_auth_method === 'client_secret_post'
      ? oauth.ClientSecretPost(client.client_secret)
      : oauth.ClientSecretBasic(client.client_secret);
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(idp.endpoints.authorization);
  for (const [k, v] of Object.entries({
    client_id: client.client_id,
    redirect_uri: REDIRECT,
    response_type: 'code',
    scope: 'api:read',
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  }))
    url.searchParams.set(k, v);
  const params = oauth.validateAuthResponse(as, rp, await idp.consent(url.href, account), state);
  const response = await oauth.authorizationCodeGrantRequest(
    as,
    rp,
    auth,
    params,
    REDIRECT,
    verifier,
    insecure,
  );
  const tokens = await oauth.processAuthorizationCodeResponse(as, rp, response);
  assert.ok(tokens.refresh_token, 'the provider issued a refresh token');
  return tokens as oauth.TokenEndpointResponse & { refresh_token: string };
}

/** The original's database with its schema, and helpers that write rows as the original did. */
export class OriginalDatabase {
  /** Original ids: of providers by name, of connections by label. */
  readonly providerIds: Record<string, string> = {};
  readonly ids: Record<string, string> = {};

  readonly url: string;
  readonly client: pg.Client;
  readonly key: Uint8Array;
  readonly #drop: () => Promise<void>;

  private constructor(url: string, client: pg.Client, key: Uint8Array, drop: () => Promise<void>) {
    this.url = url;
    this.client = client;
    this.key = key;
    this.#drop = drop;
  }

  /** A fresh database on `server` with the original's schema; `key` plays its ENCRYPTION_KEY. */
  static async create(server: string, key: Uint8Array): Promise<OriginalDatabase> {
    const db = await freshDatabase(server, 'nexus_original');
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    await client.query(readFileSync(join(import.meta.dirname, 'fixtures/original-schema.sql'), 'utf8'));
    return new OriginalDatabase(db.url, client, key, db.drop);
  }

  async addProvider(name: string, profile: Record<string, unknown>, deleted = false): Promise<string> {
    const columns = ['name', ...Object.keys(profile), ...(deleted ? ['deleted_at'] : [])];
    const values = [name, ...Object.values(profile), ...(deleted ? [new Date()] : [])];
    const { rows } = await this.client.query(
      `INSERT INTO provider_profiles (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING id`,
      values,
    );
    this.providerIds[name] = rows[0].id;
    return rows[0].id;
  }

  async addConnection(
    label: string,
    provider: string,
    workspace: string,
    status: string,
    token?: { value: unknown; expiresAt?: Date | null; key?: Uint8Array },
  ): Promise<string> {
    const { rows } = await this.client.query(
      `INSERT INTO connections (workspace_id, provider_id, status, scopes, code_verifier, return_url)
       VALUES ($1, $2, $3, $4, 'verifier-in-clear', 'https://app.example/back') RETURNING id`,
      [workspace, this.providerIds[provider], status, ['api:read']],
    );
    const id = rows[0].id as string;
    if (token !== undefined)
      await this.client.query(
        'INSERT INTO tokens (connection_id, encrypted_data, expires_at) VALUES ($1, $2, $3)',
        [id, sealOriginal(token.key ?? this.key, token.value), token.expiresAt ?? null],
      );
    this.ids[label] = id;
    return id;
  }

  async close(): Promise<void> {
    await this.client.end();
    await this.#drop();
  }
}

type Tokens = Awaited<ReturnType<typeof login>>;

/**
 * The rows the import test works on, labelled (`db.ids[label]`, `db.providerIds[name]`):
 *
 * | label / name | what it is | what the import should do |
 * |---|---|---|
 * | `idp`, `idp-basic` | oauth2 providers of the OpenID fixture (client_secret_post / _basic) | create |
 * | `weather` | api_key provider | create |
 * | `old-crm` | deleted provider, with alias `crm` | skip (and its alias, its connection) |
 * | `bad` | api_key with a client_id: valid for the original, not for Nexus | fail: invalid_provider |
 * | `github` | oauth2, same name as a Nexus provider with another client | fail: name conflict |
 * | `alice` | active on idp: real tokens, `expires_in`, an id_token, tokens.expires_at in an hour | import |
 * | `bob` | active on idp-basic: real tokens, only `expiry` (a minute ago) | import, refreshed on read |
 * | `weather` | active static credentials | import |
 * | `pending`, `failed` | nothing to import | skip |
 * | `attention` | attention_required | import as such, without tokens |
 * | `deleted-provider`, `invalid-provider`, `conflict` | active on old-crm / bad / github | skip / fail / fail |
 * | `foreign-key` | active, token sealed under another key | fail: does not decrypt |
 *
 * Alias `Identity` (`identity`) on idp, and three audit events of alice's connection.
 */
export async function seedScenario(
  db: OriginalDatabase,
  s: { idp: OidcFixture; alice: Tokens; bob: Tokens; weatherKey: string },
): Promise<void> {
  const { idp, alice, bob, weatherKey } = s;
  await db.addProvider('idp', {
    client_id: clients[0]!.client_id,
    client_secret: clients[0]!.client_secret,
    auth_url: idp.endpoints.authorization,
    token_url: idp.endpoints.token,
    scopes: ['api:read'],
    params: { revocation_endpoint: idp.endpoints.revocation },
    description: 'the identity provider',
  });
  await db.addProvider('idp-basic', {
    client_id: clients[1]!.client_id,
    client_secret: clients[1]!.client_secret,
    auth_header: 'client_secret_basic',
    auth_url: idp.endpoints.authorization,
    token_url: idp.endpoints.token,
    scopes: ['api:read'],
  });
  await db.addProvider('weather', {
    auth_type: 'api_key',
    // What a Go client writes for a field it leaves unset: taken as not given (its default).
    auth_header: '',
    api_base_url: 'https://api.weather.example',
  });
  await db.addProvider('old-crm', { auth_type: 'api_key' }, true);
  // Valid for the original, refused by Nexus's rules: an OAuth field on a static type.
  await db.addProvider('bad', { auth_type: 'api_key', client_id: 'stray-client-id' });
  await db.addProvider('github', {
    client_id: 'original-client',
    client_secret: 'gh-original-secret',
    auth_url: 'https://github.com/login/oauth/authorize',
    token_url: 'https://github.com/login/oauth/access_token',
  });
  await db.client.query(
    `INSERT INTO provider_aliases (provider_id, alias, alias_norm) VALUES ($1, 'Identity', 'identity'), ($2, 'crm', 'crm')`,
    [db.providerIds.idp, db.providerIds['old-crm']],
  );

  const inAnHour = new Date(Date.now() + 3600_000);
  await db.addConnection('alice', 'idp', 'alice', 'active', {
    value: { ...alice, id_token: 'header.claims.signature', expires_in: 3600 },
    expiresAt: inAnHour,
  });
  // No expires_at column: the expiry comes from the response's `expiry`, already past.
  await db.addConnection('bob', 'idp-basic', 'bob', 'active', {
    value: {
      access_token: bob.access_token,
      refresh_token: bob.refresh_token,
      token_type: 'Bearer',
      expiry: new Date(Date.now() - 60_000).toISOString(),
    },
  });
  await db.addConnection('weather', 'weather', 'carol', 'active', { value: { api_key: weatherKey } });
  await db.addConnection('pending', 'idp', 'dave', 'pending');
  await db.addConnection('failed', 'idp', 'erin', 'failed');
  await db.addConnection('attention', 'idp', 'frank', 'attention_required', {
    value: { access_token: 'dead-access', refresh_token: 'dead-refresh' },
  });
  await db.addConnection('deleted-provider', 'old-crm', 'carol', 'active', {
    value: { api_key: 'crm-key' },
  });
  await db.addConnection('invalid-provider', 'bad', 'carol', 'active', {
    value: { api_key: 'bad-key' },
  });
  await db.addConnection('conflict', 'github', 'alice', 'active', {
    value: { access_token: 'gho_original' },
  });
  await db.addConnection('foreign-key', 'weather', 'grace', 'active', {
    value: { api_key: 'sealed-under-another-key' },
    key: randomBytes(32),
  });
  await db.client.query(
    `INSERT INTO audit_events (connection_id, event_type, event_data, ip_address, user_agent, created_at)
     VALUES ($1, 'oauth_flow_completed', '{"provider": "idp"}', '10.0.0.1', 'go-sdk', now() - interval '2 days'),
            ($1, 'token_retrieved', '{"access_token": "leaked-in-history"}', '10.0.0.2', 'go-sdk', now() - interval '1 day'),
            ($1, 'token_refresh_fatal', '{"error": "invalid_grant"}', NULL, NULL, now() - interval '1 hour')`,
    [db.ids.alice],
  );
}
