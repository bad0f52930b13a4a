import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../config/load.ts';
import {
  createKeyFile,
  KeyFileError,
  newKey,
  readKeyFile,
  resolveKeys,
  updateKeyFile,
  writeKeyFile,
} from './key-file.ts';
import { keyIdOf } from './keyring.ts';

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

  const kids = (path: string) => readKeyFile(path, false).encryptionKeys.map((k) => keyIdOf(k.reveal()));

  it('is created only when absent: a second creation finds the first and leaves it as it was', () => {
    const path = join(dir, 'created', 'keys.json');
    const first = { encryptionKeys: [newKey()], stateKey: newKey() };
    assert.equal(createKeyFile(path, first), true);
    assert.equal(createKeyFile(path, { encryptionKeys: [newKey()], stateKey: newKey() }), false);
    assert.deepEqual(kids(path), [keyIdOf(first.encryptionKeys[0]!.reveal())]);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    // No temporary file is left behind by either attempt.
    assert.deepEqual(readdirSync(join(dir, 'created')), ['keys.json']);
  });

  it('keeps both keys when another process changes the file during a change', async () => {
    const path = join(dir, 'shared.json');
    writeKeyFile(path, { encryptionKeys: [newKey()], stateKey: newKey() });
    const original = kids(path);
    // A second process adds its key while it holds the file for 400 ms.
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { newKey, updateKeyFile } = await import(${JSON.stringify(new URL('./key-file.ts', import.meta.url).href)});
         updateKeyFile(process.argv[1], false, (m) => {
           process.stdout.write('holding\\n');
           Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 400);
           return { ...m, encryptionKeys: [newKey(), ...m.encryptionKeys] };
         });`,
        path,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    const ours = newKey();
    updateKeyFile(path, false, (m) => ({ ...m, encryptionKeys: [ours, ...m.encryptionKeys] }));
    assert.equal(await new Promise((resolve) => child.once('exit', resolve)), 0);
    const now = kids(path);
    // Ours went on top of the other process's key, which went on top of the original.
    assert.equal(now.length, 3);
    assert.equal(now[0], keyIdOf(ours.reveal()));
    assert.deepEqual(now.slice(2), original);
    assert.equal(existsSync(`${path}.lock`), false);
  });

  it('refuses a change while another process holds the file, and names a lock whose process is gone', () => {
    const path = join(dir, 'locked.json');
    writeKeyFile(path, { encryptionKeys: [newKey()], stateKey: newKey() });
    const before = kids(path);
    const add = () =>
      updateKeyFile(path, false, (m) => ({ ...m, encryptionKeys: [newKey(), ...m.encryptionKeys] }), 100);
    const refused = (pattern: RegExp) =>
      assert.throws(add, (e: unknown) => e instanceof KeyFileError && pattern.test(e.message));
    // A running holder (this process): waited for, then refused.
    writeFileSync(`${path}.lock`, `${process.pid}@${hostname()}`);
    refused(new RegExp(`being changed by another process \\(${process.pid}@`));
    // A process that has exited (this one's child, reaped): refused at once, saying so.
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    }).stdout;
    writeFileSync(`${path}.lock`, `${gone}@${hostname()}`);
    refused(new RegExp(`left by process ${gone}, which is no longer running.*Remove ${path}\\.lock`));
    // The same pid on another host cannot be checked from here: waited for, then refused.
    writeFileSync(`${path}.lock`, `${gone}@elsewhere.example`);
    refused(/being changed by another process \(\d+@elsewhere\.example\)/);
    assert.deepEqual(kids(path), before, 'nothing changed');
    assert.equal(existsSync(`${path}.lock`), true, 'the lock is left for the operator');
    rmSync(`${path}.lock`);
    add();
    assert.equal(kids(path).length, 2);
    assert.equal(existsSync(`${path}.lock`), false);
  });
});
