import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../config/load.ts';
import { KeyFileError, newKey, readKeyFile, resolveKeys, writeKeyFile } from './key-file.ts';

describe('key file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nexus-keys-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is generated on first development start with mode 0600, then reused', () => {
    const config = loadConfig({ NEXUS_DATA_DIR: join(dir, 'dev') });
    const first = resolveKeys(config);
    assert.equal(first.generated, true);
    assert.equal(statSync(join(dir, 'dev', 'keys.json')).mode & 0o777, 0o600);
    const second = resolveKeys(config);
    assert.equal(second.generated, false);
    assert.equal(second.ring.primaryKid, first.ring.primaryKid);
  });

  it('is never generated in production', () => {
    const config = loadConfig({
      NEXUS_ENV: 'production',
      NEXUS_KEY_FILE: join(dir, 'missing.json'),
      BASE_URL: 'https://b.example.com',
    });
    assert.throws(
      () => resolveKeys(config),
      (e: unknown) => e instanceof KeyFileError && /nexus keys generate/.test(e.message),
    );
  });

  it('is refused in production when other users can read it', () => {
    const path = join(dir, 'loose.json');
    writeKeyFile(path, { encryptionKeys: [newKey()], stateKey: newKey() });
    chmodSync(path, 0o644);
    assert.throws(() => readKeyFile(path, true), /chmod 600/);
    assert.doesNotThrow(() => readKeyFile(path, false));
  });

  it('rejects malformed content with a message that names the problem', () => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, JSON.stringify({ version: 1, encryption_keys: ['dG9vIHNob3J0'], state_key: 'x' }), {
      mode: 0o600,
    });
    assert.throws(() => readKeyFile(path, true), /encryption_keys\[0\] is not a 32-byte base64 key/);
  });
});
