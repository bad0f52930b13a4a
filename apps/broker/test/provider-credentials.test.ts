/**
 * provider-credentials.ts on its own: an external backend's reads are cached, its misses are not.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createProviderCredentials } from '../src/modules/providers/provider-credentials.ts';
import type { SecretBackend } from '../src/modules/secrets/secret-backend.ts';

function memoryBackend(): SecretBackend & { store: Map<string, Uint8Array>; gets: number } {
  const store = new Map<string, Uint8Array>();
  const backend = {
    kind: 'openbao',
    keepsVersions: false,
    store,
    gets: 0,
    async get(path: string) {
      backend.gets++;
      const value = store.get(path);
      return value === undefined ? null : { value, version: '1' };
    },
    async put(path: string, value: Uint8Array) {
      store.set(path, value);
      return { version: '1' };
    },
    async delete(path: string) {
      store.delete(path);
    },
    async list() {
      return [...store.keys()];
    },
    async healthCheck() {},
    async close() {},
  };
  return backend;
}

describe('provider credentials cache', () => {
  it('does not cache a miss: a credential written elsewhere is seen at once', async () => {
    const backend = memoryBackend();
    const creds = createProviderCredentials(backend, { cacheMs: 30_000, now: () => 1_000 });
    const ref = { id: 'p1', name: 'github' };
    assert.equal(await creds.getSecret(ref), undefined);
    // Another replica (or the operator) writes it directly to the backend.
    backend.store.set('github/client_secret', new TextEncoder().encode('s3cret'));
    assert.equal(await creds.getSecret(ref), 's3cret');
    // A value is cached: the next read does not reach the backend.
    const gets = backend.gets;
    assert.equal(await creds.getSecret(ref), 's3cret');
    assert.equal(backend.gets, gets);
  });
});
