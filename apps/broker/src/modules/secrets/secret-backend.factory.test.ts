import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lazyBackend } from './secret-backend.factory.ts';
import type { SecretBackend } from './secret-backend.ts';

/** The backend a lazy loader hands out once loaded: records what reached it (the loader is under test). */
function loadedBackend(calls: string[]): SecretBackend {
  return {
    kind: 'loaded',
    keepsVersions: true,
    get: async (path) => {
      calls.push(`get ${path}`);
      return null;
    },
    put: async () => ({ version: '1' }),
    delete: async () => undefined,
    list: async () => [],
    healthCheck: async () => {
      calls.push('healthCheck');
    },
    close: async () => {
      calls.push('close');
    },
  };
}

test('a failed load is not kept: the next call loads again and then the loaded backend serves', async () => {
  const calls: string[] = [];
  let opens = 0;
  const backend = lazyBackend('aws-secrets-manager', async () => {
    opens++;
    if (opens === 1) throw new Error('EMFILE: too many open files');
    return loadedBackend(calls);
  });
  await assert.rejects(backend.healthCheck(), /EMFILE/);
  await backend.healthCheck();
  assert.equal(await backend.get('team/a'), null);
  await backend.close();
  assert.equal(opens, 2, 'loaded once after the failure, then kept');
  assert.deepEqual(calls, ['healthCheck', 'get team/a', 'close']);
});

test('concurrent first calls share one load', async () => {
  let opens = 0;
  const backend = lazyBackend('gcp-secret-manager', async () => {
    opens++;
    return loadedBackend([]);
  });
  await Promise.all([backend.healthCheck(), backend.get('a'), backend.list('')]);
  assert.equal(opens, 1);
});

test('closing a backend never used loads nothing, and closing after a failed load does not throw', async () => {
  let opens = 0;
  const never = lazyBackend('aws-secrets-manager', async () => {
    opens++;
    return loadedBackend([]);
  });
  await never.close();
  assert.equal(opens, 0);
  const failed = lazyBackend('aws-secrets-manager', async () => {
    throw new Error('import failed');
  });
  await assert.rejects(failed.get('a'), /import failed/);
  await failed.close();
});
