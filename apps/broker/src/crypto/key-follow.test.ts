import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../config/load.ts';
import { NexusError } from '../errors/nexus-error.ts';
import { openText, sealText } from './envelope.ts';
import { newKey, readKeyFile, resolveKeys, writeKeyFile } from './key-file.ts';
import { watchKeyFile } from './key-file-watch.ts';
import type { KeyReloadEvent } from './key-follow.ts';
import { keyIdOf } from './keyring.ts';

/** Decision 0013: a running process's rings follow its key file; keys from the environment never change. */
describe('key rings that follow the key file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nexus-follow-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const where = { table: 'secret_store', id: 'a/b', field: 'value' };
  let n = 0;

  function fresh() {
    const path = join(dir, `keys-${++n}.json`);
    writeKeyFile(path, { encryptionKeys: [newKey()], stateKey: newKey(), userSecretsKeys: [newKey()] });
    const config = loadConfig({ NEXUS_ENV: 'test', NEXUS_DATA_DIR: dir, NEXUS_KEY_FILE: path });
    return { path, config };
  }

  /** What `nexus keys rotate` does to the file: a new primary in front, the old keys after it. */
  function rotate(path: string, which: 'encryption' | 'userSecrets' = 'encryption') {
    const material = readKeyFile(path, false);
    const key = newKey();
    writeKeyFile(
      path,
      which === 'encryption'
        ? { ...material, encryptionKeys: [key, ...material.encryptionKeys] }
        : { ...material, userSecretsKeys: [key, ...(material.userSecretsKeys ?? [])] },
    );
    return keyIdOf(key.reveal());
  }

  it('opens what a process that reloaded sooner sealed: an unknown key id re-reads the file first', () => {
    const { path, config } = fresh();
    const slow = resolveKeys(config);
    const ring = slow.ring; // the reference every module keeps
    const oldKid = ring.primaryKid;
    const newKid = rotate(path);
    // Another process starts (or reloads) now and seals under the new primary.
    const quick = resolveKeys(config);
    assert.equal(quick.ring.primaryKid, newKid);
    const sealed = sealText(quick.ring, 'hunter2', where);
    assert.equal(ring.primaryKid, oldKid, 'nothing re-read yet');
    assert.equal(openText(ring, sealed, where), 'hunter2');
    assert.equal(ring.primaryKid, newKid, 'the same object now writes with the new primary');
    assert.deepEqual([...ring.kids], [newKid, oldKid]);
  });

  it('reload(): unchanged, changed (listeners hear the new key ids), and failures keep the keys in use', () => {
    const { path, config } = fresh();
    const keys = resolveKeys(config);
    const events: KeyReloadEvent[] = [];
    const stop = keys.onReload((e) => events.push(e));
    assert.equal(keys.follows, path);
    assert.equal(keys.reload(), 'unchanged');
    const newKid = rotate(path);
    assert.equal(keys.reload({ reason: 'test' }), 'changed');
    assert.equal(keys.ring.primaryKid, newKid);
    assert.deepEqual(events, [
      {
        outcome: 'changed',
        reason: 'test',
        encryption: keys.ring.kids,
        userSecrets: keys.userSecretsRing!.kids,
      },
    ]);
    const userKid = rotate(path, 'userSecrets');
    assert.equal(keys.reload(), 'changed');
    assert.equal(keys.userSecretsRing!.primaryKid, userKid);

    // A broken file (a half-done manual edit): keys kept, said once, not on every poll.
    writeFileSync(path, '{"version": 1, "encryption_keys": [', { mode: 0o600 });
    events.length = 0;
    assert.equal(keys.reload(), 'failed');
    assert.equal(keys.reload(), 'failed');
    assert.equal(events.length, 1);
    assert.equal(events[0]!.outcome, 'failed');
    assert.match((events[0] as { message: string }).message, /not valid JSON/);
    assert.equal(keys.ring.primaryKid, newKid);
    const sealed = sealText(keys.ring, 'still works', where);
    assert.equal(openText(keys.ring, sealed, where), 'still works');
    stop();
  });

  it('a key id in no version of the file still fails with key_not_in_ring, naming where the keys come from', () => {
    const { path, config } = fresh();
    const keys = resolveKeys(config);
    const other = fresh();
    const foreign = sealText(resolveKeys(other.config).ring, 'x', where);
    assert.throws(
      () => openText(keys.ring, foreign, where),
      (e: unknown) =>
        e instanceof NexusError &&
        e.code === 'key_not_in_ring' &&
        String(e.detail).includes(`encryption_keys in the key file ${path}`),
    );
  });

  it('keys from the environment: nothing to follow', () => {
    const key = Buffer.from(newKey().reveal()).toString('base64');
    const keys = resolveKeys(
      loadConfig({
        NEXUS_ENV: 'test',
        NEXUS_DATA_DIR: dir,
        ENCRYPTION_KEY: key,
        STATE_KEY: Buffer.from(newKey().reveal()).toString('base64'),
      }),
    );
    assert.equal(keys.follows, undefined);
    assert.equal(keys.reload({ force: true }), 'unchanged');
    assert.equal(keys.ring.origin, 'ENCRYPTION_KEYS');
  });

  it('watchKeyFile: a running process picks up a rotation by itself', async () => {
    const { path, config } = fresh();
    const keys = resolveKeys(config);
    const watcher = watchKeyFile(keys, { pollMs: 200 });
    try {
      const newKid = rotate(path);
      const deadline = Date.now() + 5_000;
      while (keys.ring.primaryKid !== newKid) {
        assert.ok(Date.now() < deadline, 'the ring did not follow the file within 5 s');
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      watcher.close();
    }
  });
});
