/**
 * The GCP Secret Manager backend (official client, REST mode) against a FAKE server
 * (gcp-secret-manager.fake.ts): Google publishes no emulator. Part of `npm test`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PassThroughClient } from 'google-auth-library';
import {
  createGcpSecretManagerBackend,
  decodeSecretId,
  encodeSecretId,
} from '../../src/modules/secrets/gcp-secret-manager.backend.ts';
import { rejectsWithCode, secretBackendConformance } from './conformance.ts';
import { FakeGcpSecretManager } from './gcp-secret-manager.fake.ts';

const fake = new FakeGcpSecretManager(['acme-test']);
const backend = (projectId = 'acme-test', port?: number, attempts = 3) =>
  createGcpSecretManagerBackend({
    projectId,
    attempts,
    prefix: 'nexus-providers',
    apiEndpoint: '127.0.0.1',
    // The auth library's documented client for emulators: no Google credentials, no token fetch.
    client: { port: port ?? fake.port, protocol: 'http', authClient: new PassThroughClient() } as never,
  });

before(() => fake.start());
after(() => fake.stop());

secretBackendConformance({
  name: 'gcp-secret-manager (FAKE REST server, official client)',
  open: async () => backend(),
  unreachable: async () => backend('acme-test', 1, 1),
  denied: async () => backend('someone-elses-project'),
});

describe('gcp secret manager backend against the FAKE server', () => {
  it('names secrets <prefix>_<encoded path>, reversibly, within GCP id rules', () => {
    for (const path of ['github/client_secret', 'a.b/c_d/é', 'x-y/Z9']) {
      const id = encodeSecretId(path);
      assert.match(id, /^[A-Za-z0-9_-]+$/);
      assert.equal(decodeSecretId(id), path);
    }
    assert.equal(encodeSecretId('github/client_secret'), 'github_2fclient_5fsecret');
  });

  it('writes through the REST surface, sends a CRC32C and creates the secret on first write', async () => {
    const s = backend();
    await s.put('rest/one', new TextEncoder().encode('v'));
    const calls = fake.requests.filter((r) => r.url.includes('rest_2fone') || r.url.endsWith('/secrets'));
    assert.deepEqual(
      calls.slice(-3).map((c) => `${c.method} ${c.status}`),
      ['POST 404', 'POST 200', 'POST 200'],
    );
    assert.ok(fake.secrets.has('projects/acme-test/secrets/nexus-providers_rest_2fone'));
  });

  it('retries a 503 and maps 503s beyond the attempts to secret_backend_unavailable', async () => {
    const s = backend('acme-test', undefined, 2);
    await s.put('down/one', new TextEncoder().encode('v'));
    fake.failNext(503, 1);
    assert.equal(new TextDecoder().decode((await s.get('down/one'))?.value), 'v', 'one 503 is retried');
    fake.failNext(503, 2);
    await rejectsWithCode(s.get('down/one'), 'secret_backend_unavailable', 'injected');
  });

  it('only NOT_FOUND is absent: FAILED_PRECONDITION (a disabled version) is secret_backend_unavailable', async () => {
    const s = backend();
    await s.put('disabled/one', new TextEncoder().encode('v'));
    fake.failNext(400, 1, 'FAILED_PRECONDITION');
    await rejectsWithCode(s.get('disabled/one'), 'secret_backend_unavailable', 'injected');
    assert.equal(await s.get('disabled/never-written'), null);
  });
});
