import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { migrate } from '../src/db/migrate.ts';
import { createProviderCredentials } from '../src/modules/providers/provider-credentials.ts';
import { profileInput, profilePatch } from '../src/modules/providers/providers.schemas.ts';
import { createProvidersService } from '../src/modules/providers/providers.service.ts';
import { createProvidersStore } from '../src/modules/providers/providers.store.ts';
import type { SecretBackend } from '../src/modules/secrets/secret-backend.ts';
import { secretError } from '../src/modules/secrets/secrets.errors.ts';
import { containerFor, envKeys } from './cli-helpers.ts';
import { createTestDatabase } from './harness.ts';

/**
 * A provider change whose client-secret write fails half-way must not leave the backend holding
 * the new client id beside the old secret (every refresh would then answer invalid_client). The
 * backend is the broker's real internal one, on a database of its own (as an external backend
 * is), presented as an external layout (name-keyed `client_id` and `client_secret` paths, as
 * Vault, AWS and GCP hold them) with a write that fails on demand: no real Vault can be made to
 * refuse one chosen write. SQLite and PostgreSQL.
 */

/** The internal backend of a second database, and that database's cleanup. */
async function backendElsewhere() {
  const db = await createTestDatabase();
  const container = containerFor({ ...db.env, NEXUS_ENV: 'test', ...envKeys() });
  await migrate(container.db);
  return {
    secrets: container.secrets,
    async close() {
      await container.close();
      await db.drop();
    },
  };
}

describe('provider writes when the backend refuses one of them', () => {
  it('an update puts the client id back with the profile; a delete keeps the pair', async () => {
    const db = await createTestDatabase();
    const container = containerFor({ ...db.env, NEXUS_ENV: 'test', ...envKeys() });
    const elsewhere = await backendElsewhere();
    try {
      await migrate(container.db);
      let refuse: string | undefined;
      let refuseDelete: string | undefined;
      const real = elsewhere.secrets;
      const scripted: SecretBackend = {
        ...real,
        kind: 'openbao',
        keepsVersions: false,
        async put(path, value) {
          if (refuse !== undefined && path.endsWith(refuse))
            throw secretError('secret_backend_unavailable', { detail: 'refused by the test' });
          return real.put(path, value);
        },
        async delete(path) {
          if (refuseDelete !== undefined && path.endsWith(refuseDelete))
            throw secretError('secret_backend_unavailable', { detail: 'refused by the test' });
          return real.delete(path);
        },
      };
      const providers = createProvidersService({
        store: createProvidersStore(container.db),
        secrets: scripted,
        discovery: { refresh: () => Promise.reject(new Error('no discovery here')) },
        audit: { record: async () => {} },
        allowLoopbackHttp: false,
      });
      const ctx = { actor: 'test', requestId: 'r' };
      const created = await providers.create(
        ctx,
        profileInput.parse({
          name: 'crm',
          client_id: 'old-id',
          client_secret: 'old-secret',
          auth_url: 'https://idp.example.com/authorize',
          token_url: 'https://idp.example.com/token',
        }),
      );
      refuse = 'client_secret';
      await assert.rejects(
        providers.patch(
          ctx,
          created.id,
          profilePatch.parse({ client_id: 'new-id', client_secret: 'new-secret' }),
        ),
        (error: { code?: string }) => error.code === 'secret_backend_unavailable',
      );
      refuse = undefined;
      const inUse = await providers.loadForUse(created.id);
      assert.equal(inUse.profile.client_id, 'old-id');
      assert.equal(inUse.clientSecret, 'old-secret', 'the pair the provider issued, still together');

      // A delete the backend half refuses is rolled back whole: the provider keeps its pair.
      for (const part of ['client_id', 'client_secret']) {
        refuseDelete = part;
        await assert.rejects(
          providers.remove(ctx, created.id),
          (error: { code?: string }) => error.code === 'secret_backend_unavailable',
        );
        refuseDelete = undefined;
        const kept = await providers.loadForUse(created.id);
        assert.equal(kept.profile.client_id, 'old-id', `after refusing ${part}`);
        assert.equal(kept.clientSecret, 'old-secret', `after refusing ${part}`);
      }
    } finally {
      await elsewhere.close();
      await container.close();
      await db.drop();
    }
  });

  it("a replica does not serve a deleted provider's cached credentials to one created again under its name", async () => {
    const elsewhere = await backendElsewhere();
    try {
      const external: SecretBackend = { ...elsewhere.secrets, kind: 'openbao', keepsVersions: false };
      const clock = { t: Date.now() };
      const [a, b] = [0, 1].map(() => createProviderCredentials(external, { now: () => clock.t }));
      const first = { id: 'id-first', name: 'crm' };
      await a!.putClientId(first, 'first-id');
      await a!.putSecret(first, 'first-secret');
      assert.equal(await b!.getSecret(first), 'first-secret'); // replica b has it cached now
      // Deleted and created again through replica a, within b's cache time.
      await a!.dropName(first);
      const second = { id: 'id-second', name: 'crm' };
      await a!.putClientId(second, 'second-id');
      await a!.putSecret(second, 'second-secret');
      clock.t += 1_000;
      assert.equal(await b!.getClientId(second), 'second-id');
      assert.equal(await b!.getSecret(second), 'second-secret');
    } finally {
      await elsewhere.close();
    }
  });
});
