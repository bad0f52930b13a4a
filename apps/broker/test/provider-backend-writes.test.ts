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
 * backend is the broker's real internal one (its database table), presented as an external
 * layout (name-keyed `client_id` and `client_secret` paths, as Vault, AWS and GCP hold them) with
 * a write that fails on demand: no real Vault can be made to refuse one chosen write. SQLite and
 * PostgreSQL.
 */
describe('provider update when the backend refuses the secret write', () => {
  it('puts the client id back with the profile', async () => {
    const db = await createTestDatabase();
    const container = containerFor({ ...db.env, NEXUS_ENV: 'test', ...envKeys() });
    try {
      await migrate(container.db);
      let refuse: string | undefined;
      const real = container.secrets;
      const scripted: SecretBackend = {
        ...real,
        kind: 'openbao',
        keepsVersions: false,
        async put(path, value) {
          if (refuse !== undefined && path.endsWith(refuse))
            throw secretError('secret_backend_unavailable', { detail: 'refused by the test' });
          return real.put(path, value);
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
    } finally {
      await container.close();
      await db.drop();
    }
  });

  it("a replica does not serve a deleted provider's cached credentials to one created again under its name", async () => {
    const db = await createTestDatabase();
    const container = containerFor({ ...db.env, NEXUS_ENV: 'test', ...envKeys() });
    try {
      await migrate(container.db);
      const external: SecretBackend = { ...container.secrets, kind: 'openbao', keepsVersions: false };
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
      await container.close();
      await db.drop();
    }
  });
});
