/**
 * TOKEN_STORE=secret-backend: a refresh whose backend write lands after its lease was taken over
 * (its process stalled past the lease: a paused VM, a frozen container, a put held up in the
 * network) must not overwrite the tokens that the replica which took over stored. Every write
 * goes to a path of its own, so the late one makes a copy no row names, and its writer deletes it
 * when it finds the lease gone. The provider here does not rotate refresh tokens, so both
 * refreshes get tokens (at a rotating provider the second would lose the grant instead, and the
 * late copy would hold a dead token either way). Also: rows written before this layout (the copy
 * at `connections/<id>`) are read, and move to a path of their own on their next write. Runs on
 * SQLite and PostgreSQL, internal backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildContainer, type Container } from '../src/container.ts';
import { BACKEND_MARKER, backendPath, credentialsPath } from '../src/modules/connections/credential-store.ts';
import { type ConnectionStores, withConnectionStores } from './connection-stores.ts';
import { Scenario } from './oauth-scenario.ts';

describe('TOKEN_STORE=secret-backend: a backend write landing after a lease takeover', () => {
  const s = new Scenario();
  let replica: Container & ConnectionStores;
  before(async () => {
    await s.start({ rotate: false, env: { TOKEN_STORE: 'secret-backend' } });
    replica = withConnectionStores(buildContainer(s.broker.container.config, { now: () => s.clock }));
  });
  after(async () => {
    await replica.close();
    await s.close();
  });

  const ctx = { actor: 'test' };
  const principal = { kind: 'admin' as const, keyId: 'test', name: 'test' };

  /** Holds this broker's backend writes for `id` until `release` (the others pass). */
  function holdPuts(id: string) {
    const secrets = s.broker.container.secrets as {
      put: (path: string, value: Uint8Array) => Promise<{ version: string }>;
    };
    const realPut = secrets.put;
    let reached!: () => void;
    let release!: () => void;
    const atPut = new Promise<void>((r) => {
      reached = r;
    });
    const gate = new Promise<void>((r) => {
      release = r;
    });
    secrets.put = async (path, value) => {
      if (path.startsWith(`connections/${id}`)) {
        reached();
        await gate;
      }
      return realPut.call(secrets, path, value);
    };
    return {
      atPut,
      release,
      restore() {
        release();
        secrets.put = realPut;
      },
    };
  }

  it('keeps the newer tokens, serves them, and leaves one copy: the one the row names', async () => {
    const id = await s.connect('idp-discovered', 'late-write');
    const held = holdPuts(id);
    try {
      // This broker refreshes: the provider answers, and the write of its tokens is held.
      const stalled = s.broker.container.connections.refresh(ctx, principal, id).then(
        () => 'kept',
        (error: { code?: string }) => error.code,
      );
      await held.atPut;
      // Its lease is gone (a frozen process stops renewing it), and the replica refreshes.
      await s.broker.container.db.kysely
        .updateTable('connections')
        .set({ refresh_lease_owner: null, refresh_lease_until: null })
        .where('id', '=', id)
        .execute();
      s.clock += 1_000;
      const newer = await replica.connections.refresh(ctx, principal, id);
      // Now the held write lands.
      held.release();
      assert.equal(await stalled, 'refresh_in_progress', 'the late refresh could not keep its tokens');
      assert.equal(
        (await s.token(id)).access_token,
        newer.access_token,
        'the token served is the one the replica stored',
      );
      const row = await replica.connectionsStore.find(id);
      assert.deepEqual(
        await replica.credentialStore.copiesOf(id),
        [backendPath(id, row!.credentials!)],
        'the late copy and the consent copy are gone',
      );
      // And the connection refreshes on from what the replica stored.
      s.clock += 2 * 3600_000;
      assert.notEqual((await s.token(id)).access_token, newer.access_token);
    } finally {
      held.restore();
    }
  });

  it('reads a row written before paths of their own (`connections/<id>`), and moves it on its next write', async () => {
    const id = await s.connect('idp-discovered', 'legacy-layout');
    const { secrets } = s.broker.container;
    const row = await replica.connectionsStore.find(id);
    const path = backendPath(id, row!.credentials!);
    const sealed = (await secrets.get(path))!.value;
    // As a broker before this layout left it: the copy at connections/<id>, the bare marker.
    await secrets.put(credentialsPath(id), sealed);
    await secrets.delete(path);
    await s.broker.container.db.kysely
      .updateTable('connections')
      .set({ credentials: BACKEND_MARKER })
      .where('id', '=', id)
      .execute();
    assert.equal((await s.token(id)).access_token, (await s.stored(id)).access_token);
    s.clock += 2 * 3600_000;
    const refreshed = await s.token(id);
    const moved = await replica.connectionsStore.find(id);
    assert.notDeepEqual(new Uint8Array(moved!.credentials!), BACKEND_MARKER);
    assert.deepEqual(await replica.credentialStore.copiesOf(id), [backendPath(id, moved!.credentials!)]);
    assert.equal(refreshed.access_token, (await s.stored(id)).access_token);
  });
});
