/**
 * TOKEN_STORE=secret-backend (issue #5, decision 0010): connection credentials are kept in the
 * secret backend at `connections/<id>`, sealed as before; the row keeps only a marker. Runs with
 * the internal backend on SQLite (`npm test`) and PostgreSQL (`npm run test:pg`), against a real
 * OpenID provider (oidc-provider) for consent, refresh and revocation.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config/load.ts';
import { buildContainer } from '../src/container.ts';
import { keyIdOfCiphertext, open } from '../src/crypto/envelope.ts';
import type { KeyRing } from '../src/crypto/keyring.ts';
import {
  credentialsBinding,
  type StoredCredentials,
} from '../src/modules/connections/connections.service.ts';
import { backendPath, isBackendMarker } from '../src/modules/connections/credential-store.ts';
import { migrateTokens } from '../src/modules/connections/tokens-migration.ts';
import { rewrap } from '../src/modules/keys/rewrap.ts';
import { secretError } from '../src/modules/secrets/secrets.errors.ts';
import { killAllChildren, runCli, show } from './cli-helpers.ts';
import { type ConnectionStores, withConnectionStores } from './connection-stores.ts';
import { assertProblem, json, newKeyBase64 } from './harness.ts';
import { RETURN, Scenario } from './oauth-scenario.ts';

after(killAllChildren);

/** Whether a connection has any copy in the container's secret backend. */
const hasCopy = async (c: ConnectionStores, id: string) => (await c.credentialStore.copiesOf(id)).length > 0;

describe('TOKEN_STORE=secret-backend with the internal backend', { timeout: 120_000 }, () => {
  const s = new Scenario();
  before(async () => {
    await s.start({ env: { TOKEN_STORE: 'secret-backend' } });
    await s.call(
      {
        method: 'POST',
        url: '/providers',
        payload: { profile: { name: 'stripe-like', auth_type: 'api_key' } },
      },
      201,
    );
  });
  after(() => s.close());

  const container = () => s.broker.container;
  /** The row's `credentials` column, read from the database. */
  async function column(id: string): Promise<Uint8Array | null> {
    const row = await container()
      .db.kysely.selectFrom('connections')
      .select('credentials')
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    return row.credentials === null ? null : new Uint8Array(row.credentials);
  }
  /** The backend paths holding copies of a connection's credentials. */
  const copies = (id: string) => container().credentialStore.copiesOf(id);
  /**
   * What the backend holds for a connection (the copy its row names, else the one copy left),
   * opened the way only the broker can.
   */
  async function backend(id: string, ring: KeyRing = container().keys.ring) {
    const col = await column(id);
    const path = isBackendMarker(col) ? backendPath(id, col!) : (await copies(id))[0];
    if (path === undefined) return null;
    const stored = await container().secrets.get(path);
    if (stored === null) return null;
    return {
      kid: keyIdOfCiphertext(stored.value),
      creds: JSON.parse(
        new TextDecoder().decode(open(ring, stored.value, credentialsBinding(id))),
      ) as StoredCredentials,
    };
  }
  const isMarker = isBackendMarker;

  it('OAuth consent puts the sealed tokens in the backend and only the marker in the row', async () => {
    const id = await s.connect('idp-discovered');
    assert.ok(isMarker(await column(id)), 'the column holds the marker, not a ciphertext');
    const stored = await backend(id);
    assert.ok(stored !== null && stored.creds.kind === 'oauth2');
    assert.ok(stored.creds.refresh_token, 'the refresh token is kept in the backend');
    assert.equal(stored.kid, container().keys.ring.primaryKid, "sealed with Nexus's own envelope too");
    const token = await s.token(id);
    assert.equal(token.access_token, stored.creds.access_token);
  });

  it('static capture puts the fields in the backend and serves them', async () => {
    const started = json<{ state: string; connection_id: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: 'u-static', provider_name: 'stripe-like', return_url: RETURN },
        },
        200,
      ),
    );
    await s.call(
      {
        method: 'POST',
        url: '/v1/capture-credential',
        key: null,
        payload: { state: started.state, credentials: { api_key: 'sk_live_in_backend_42' } },
      },
      200,
    );
    const id = started.connection_id;
    assert.ok(isMarker(await column(id)));
    assert.deepEqual((await backend(id))?.creds, {
      kind: 'static',
      fields: { api_key: 'sk_live_in_backend_42' },
    });
    const token = await s.token(id);
    assert.deepEqual(token.credentials, { api_key: 'sk_live_in_backend_42' });
  });

  it('a refresh (lazy and forced) writes the new tokens to the backend', async () => {
    const id = await s.connect('idp-discovered', 'u-refresh');
    const first = await backend(id);
    assert.ok(first?.creds.kind === 'oauth2');
    s.clock += 2 * 3600_000; // past the access token's expiry: the next read refreshes
    const lazy = await s.token(id);
    const second = await backend(id);
    assert.ok(second?.creds.kind === 'oauth2');
    assert.notEqual(second.creds.access_token, first.creds.access_token);
    assert.notEqual(
      second.creds.refresh_token,
      first.creds.refresh_token,
      'the rotated refresh token is kept',
    );
    assert.equal(lazy.access_token, second.creds.access_token);
    assert.ok(isMarker(await column(id)));
    s.clock += 31_000; // past the floor between forced refreshes
    const forced = json<{ access_token: string }>(
      await s.call({ method: 'POST', url: `/v1/refresh/${id}` }, 200),
    );
    const third = await backend(id);
    assert.ok(third?.creds.kind === 'oauth2');
    assert.equal(forced.access_token, third.creds.access_token);
    assert.notEqual(third.creds.refresh_token, second.creds.refresh_token);
  });

  it('a backend outage on a token read answers 503 with the stable code, never the backend text', async () => {
    const id = await s.connect('idp-discovered', 'u-outage');
    const secrets = container().secrets as { get: (path: string) => Promise<unknown> };
    const realGet = secrets.get;
    secrets.get = async () => {
      throw secretError('secret_backend_unavailable', {
        detail: 'dial tcp 10.9.8.7:8200: connect: connection refused (nexus/providers/connections)',
      });
    };
    try {
      const res = await s.call({ method: 'GET', url: `/v1/token/${id}` });
      assertProblem(res, 503, 'secret_backend_unavailable');
      assert.ok(!res.body.includes('10.9.8.7') && !res.body.includes('dial tcp'), res.body);
    } finally {
      secrets.get = realGet;
    }
    const stored = await backend(id);
    assert.ok(stored?.creds.kind === 'oauth2');
    assert.equal((await s.token(id)).access_token, stored.creds.access_token, 'served again once it is back');
  });

  /** Makes the backend refuse writes until the returned function is called. */
  function failPuts(): () => void {
    const secrets = container().secrets as { put: (path: string, value: Uint8Array) => Promise<unknown> };
    const realPut = secrets.put;
    secrets.put = async () => {
      throw secretError('secret_backend_unavailable', { detail: 'injected: connection refused' });
    };
    return () => {
      secrets.put = realPut;
    };
  }

  it('a backend failure while storing consent ends the flow as failed, never with an active row', async () => {
    const started = json<{ authUrl: string; connection_id: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: 'u-put-fails', provider_name: 'idp-discovered', return_url: RETURN },
        },
        200,
      ),
    );
    const callback = await s.idp.consent(started.authUrl);
    const restore = failPuts();
    try {
      const res = await s.call({ method: 'GET', url: callback.pathname + callback.search, key: null }, 302);
      const back = new URL(res.headers.location as string);
      assert.equal(back.searchParams.get('status'), 'failed');
      assert.equal(back.searchParams.get('error'), 'secret_backend_unavailable');
    } finally {
      restore();
    }
    const row = await container().connectionsStore.find(started.connection_id);
    assert.equal(row?.status, 'failed');
    assert.equal(row?.credentials, null);
  });

  it('a backend failure while storing a refresh answers 503, keeps the old copy and frees the lease', async () => {
    const id = await s.connect('idp-discovered', 'u-refresh-put-fails');
    const before = await backend(id);
    s.clock += 2 * 3600_000;
    const restore = failPuts();
    try {
      const res = await s.call({ method: 'GET', url: `/v1/token/${id}` });
      assertProblem(res, 503, 'secret_backend_unavailable');
    } finally {
      restore();
    }
    assert.deepEqual(await backend(id), before, 'the stored copy is unchanged');
    const row = await container().connectionsStore.find(id);
    assert.equal(row?.refresh_lease_owner, null, 'the lease was released');
    assert.equal(row?.last_error, 'secret_backend_failed');
    assert.ok(isMarker(await column(id)));
  });

  it('a row pointing at a missing backend copy answers 503 credentials_missing', async () => {
    const id = await s.connect('idp-discovered', 'u-missing');
    await container().secrets.delete(backendPath(id, (await column(id))!));
    const res = await s.call({ method: 'GET', url: `/v1/token/${id}` });
    assertProblem(res, 503, 'credentials_missing');
  });

  it('revocation, and a newer connection superseding an older one, delete the backend copy', async () => {
    const older = await s.connect('idp-discovered', 'u-revoke');
    const newer = await s.connect('idp-discovered', 'u-revoke');
    assert.equal(await backend(older), null, 'the superseded connection has no backend copy left');
    assert.equal(await column(older), null);
    assert.ok((await backend(newer)) !== null);
    const revoked = json(await s.call({ method: 'DELETE', url: `/v1/connections/${newer}` }, 200));
    assert.equal(revoked.provider_revoked, true, 'the tokens were read from the backend to revoke upstream');
    assert.equal(await backend(newer), null);
    assert.equal(await column(newer), null);
    // Idempotent: a second revocation finds nothing to delete and still answers.
    assert.equal(
      json(await s.call({ method: 'DELETE', url: `/v1/connections/${newer}` }, 200)).already_revoked,
      true,
    );
  });

  it("revocation and supersession delete the row's copy even when the backend's listing does not show it yet", async () => {
    // AWS's and GCP's listings are eventually consistent: a copy a refresh made a moment ago may
    // be missing from them, and it holds the live tokens.
    const older = await s.connect('idp-discovered', 'u-unlisted');
    const olderPath = backendPath(older, (await column(older))!);
    const secrets = container().secrets as { list: (prefix: string) => Promise<string[]> };
    const realList = secrets.list;
    secrets.list = async () => [];
    try {
      const newer = await s.connect('idp-discovered', 'u-unlisted');
      assert.equal(await container().secrets.get(olderPath), null, 'the superseded copy');
      const newerPath = backendPath(newer, (await column(newer))!);
      await s.call({ method: 'DELETE', url: `/v1/connections/${newer}` }, 200);
      assert.equal(await container().secrets.get(newerPath), null, 'the revoked copy');
    } finally {
      secrets.list = realList;
    }
  });

  it('nexus keys rewrap re-seals the backend copies under the new primary key', async () => {
    const id = await s.connect('idp-discovered', 'u-rewrap');
    const before = await backend(id);
    assert.ok(before !== null);
    const oldKey = s.broker.env.ENCRYPTION_KEY!;
    const newKey = newKeyBase64();
    const env = { ...s.broker.env, ENCRYPTION_KEYS: `${newKey},${oldKey}` };
    delete (env as Record<string, string | undefined>).ENCRYPTION_KEY;
    const rotated = withConnectionStores(buildContainer(loadConfig(env)));
    try {
      assert.notEqual(rotated.keys.ring.primaryKid, before.kid);
      const tokens = {
        credentials: rotated.credentialStore,
        store: rotated.connectionsStore,
        owner: `test-rewrap-${randomUUID()}`,
      };
      const result = await rewrap(rotated.db, rotated.keys.ring, { tokens });
      assert.deepEqual(result.failed, []);
      const stored = await rotated.secrets.get(backendPath(id, (await column(id))!));
      assert.equal(keyIdOfCiphertext(stored!.value), rotated.keys.ring.primaryKid);
      const again = await rewrap(rotated.db, rotated.keys.ring, { tokens });
      assert.equal(again.rewrapped, 0, 'a second run has nothing left to do');
      // The lease taken for the rewrap was given back: the connection still refreshes.
      const row = await rotated.connectionsStore.find(id);
      assert.equal(row?.refresh_lease_owner, null);
    } finally {
      await rotated.close();
    }
    // Only the new key: the credentials still open (both the backend's and Nexus's envelope).
    const onlyNew = withConnectionStores(buildContainer(loadConfig({ ...env, ENCRYPTION_KEYS: newKey })));
    try {
      const row = await onlyNew.connectionsStore.find(id);
      const creds = await onlyNew.credentialStore.read(row!);
      assert.deepEqual(creds, before.creds);
    } finally {
      await onlyNew.close();
    }
  });
});

describe('nexus secrets migrate --tokens: between the column and the backend, while serving', {
  timeout: 120_000,
}, () => {
  const s = new Scenario();
  before(() => s.start()); // TOKEN_STORE=database (the default)
  after(() => s.close());

  it('moves every connection into the backend and back, resumable, each row switched after its copy', async () => {
    const ids = [
      await s.connect('idp-discovered', 'm-1'),
      await s.connect('idp-discovered', 'm-2'),
      await s.connect('idp-basic', 'm-3'),
    ];
    const expected = await Promise.all(ids.map((id) => s.stored(id)));
    const env = { ...s.broker.env, TOKEN_STORE: 'secret-backend' };
    const other = withConnectionStores(buildContainer(loadConfig(env)));
    const marker = async (id: string) => {
      const row = await other.db.kysely
        .selectFrom('connections')
        .select('credentials')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      return isBackendMarker(row.credentials);
    };
    const run = (to: 'database' | 'secret-backend', extra: { dryRun?: boolean; signal?: AbortSignal } = {}) =>
      migrateTokens({
        store: other.connectionsStore,
        credentials: other.credentialStore,
        to,
        owner: `test-migrate-${randomUUID()}`,
        dryRun: extra.dryRun ?? false,
        ...(extra.signal ? { signal: extra.signal } : {}),
      });
    try {
      const dry = await run('secret-backend', { dryRun: true });
      assert.equal(dry.wouldMove, 3);
      assert.equal(await hasCopy(other, ids[0]!), false, 'a dry run writes nothing');

      // Interrupted after the first connection, then resumed.
      const controller = new AbortController();
      let seen = 0;
      const first = await migrateTokens({
        store: other.connectionsStore,
        credentials: other.credentialStore,
        to: 'secret-backend',
        owner: `test-migrate-${randomUUID()}`,
        dryRun: false,
        signal: controller.signal,
        onProgress: () => {
          if (++seen === 1) controller.abort();
        },
      });
      assert.equal(first.interrupted, true);
      assert.equal(first.moved, 1);
      const second = await run('secret-backend');
      assert.deepEqual([second.moved, second.alreadyThere, second.failed.length], [2, 1, 0]);
      for (const [i, id] of ids.entries()) {
        assert.ok(await marker(id), 'the row holds only the marker');
        assert.ok(await hasCopy(other, id));
        // The broker configured with TOKEN_STORE=database keeps serving: it reads by the row.
        assert.equal((await s.token(id)).access_token, expected[i]!.access_token);
      }
      assert.equal((await run('secret-backend')).moved, 0, 'idempotent');

      const back = await run('database');
      assert.deepEqual([back.moved, back.failed.length], [3, 0]);
      for (const [i, id] of ids.entries()) {
        assert.ok(!(await marker(id)));
        assert.equal(await hasCopy(other, id), false, 'the backend copy is deleted');
        assert.equal((await s.token(id)).access_token, expected[i]!.access_token);
      }
    } finally {
      await other.close();
    }
  });

  it('skips a connection whose refresh lease is held, and a rerun finishes it', async () => {
    const id = await s.connect('idp-basic', 'm-busy');
    const env = { ...s.broker.env, TOKEN_STORE: 'secret-backend' };
    const other = withConnectionStores(buildContainer(loadConfig(env)));
    try {
      assert.ok(await other.connectionsStore.holdLease(id, 'a-refresh', 60_000));
      const args = {
        store: other.connectionsStore,
        credentials: other.credentialStore,
        to: 'secret-backend' as const,
        owner: `test-migrate-${randomUUID()}`,
        dryRun: false,
      };
      const busy = await migrateTokens(args);
      assert.equal(busy.busy, 1);
      assert.equal(await hasCopy(other, id), false, 'nothing copied under a held lease');
      await other.connectionsStore.dropLease(id, 'a-refresh');
      const done = await migrateTokens(args);
      assert.equal(done.busy, 0);
      assert.ok(await hasCopy(other, id));
    } finally {
      await other.close();
    }
  });
  it('the CLI: --tokens --json moves them; with --to it refuses and says how', async () => {
    const id = await s.connect('idp-basic', 'm-cli');
    const env = { ...s.broker.env, TOKEN_STORE: 'secret-backend' };
    const refused = await runCli(['secrets', 'migrate', '--tokens', '--to', 'aws-secrets-manager'], env);
    assert.equal(refused.code, 2, show(refused));
    assert.match(refused.stderr, /TOKEN_STORE=database/);
    const moved = await runCli(['secrets', 'migrate', '--tokens', '--json'], env, 30_000);
    assert.equal(moved.code, 0, show(moved));
    const body = JSON.parse(moved.stdout.trim().split('\n').pop()!) as { moved: number; failed: unknown[] };
    assert.ok(body.moved >= 1, moved.stdout);
    assert.deepEqual(body.failed, []);
    assert.ok(await hasCopy(s.broker.container, id));
    assert.equal((await s.token(id)).access_token, (await s.stored(id)).access_token);
  });
});
