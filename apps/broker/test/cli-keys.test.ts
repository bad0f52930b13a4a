/**
 * End-to-end: `nexus keys generate` and `nexus keys rotate`, for key files and for keys given
 * in the environment. Key values must appear only where they are meant to be handed over.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { keyIdOf } from '../src/crypto/keyring.ts';
import { baseEnv, envKeys, killAllChildren, newKeyBase64, runCli, show } from './cli-helpers.ts';

after(killAllChildren);

interface KeyFileJson {
  version: number;
  encryption_keys: string[];
  state_key: string;
}

const readKeys = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as KeyFileJson;
const kidOf = (base64: string) => keyIdOf(new Uint8Array(Buffer.from(base64, 'base64')));
const BASE64_KEY = /^[A-Za-z0-9+/]{43}=$/;

describe('nexus keys generate', { timeout: 60_000 }, () => {
  let dir: string;
  let env: Record<string, string>;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nexus-keys-'));
    env = { ...baseEnv(), NEXUS_DATA_DIR: join(dir, 'data') };
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints a fresh base64 key of 32 bytes, and nothing else', async () => {
    const a = await runCli(['keys', 'generate'], env);
    const b = await runCli(['keys', 'generate'], env);
    for (const result of [a, b]) {
      assert.equal(result.code, 0, show(result));
      assert.match(result.stdout, /^[A-Za-z0-9+/]{43}=\n$/);
      assert.equal(Buffer.from(result.stdout.trim(), 'base64').length, 32);
      assert.equal(result.stderr, '');
    }
    assert.notEqual(a.stdout, b.stdout);
  });

  it('--file writes a mode-0600 key file (directory 0700) and refuses to overwrite it', async () => {
    const path = join(dir, 'secrets', 'nested', 'keys.json');
    const first = await runCli(['keys', 'generate', '--file', path], env);
    assert.equal(first.code, 0, show(first));
    assert.match(first.stdout, new RegExp(`^Wrote ${path.replaceAll('.', '\\.')} \\(mode 0600\\)`));
    assert.match(first.stdout, /back it up/);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'secrets', 'nested')).mode & 0o777, 0o700);

    const content = readFileSync(path, 'utf8');
    const keys = readKeys(path);
    assert.equal(keys.version, 1);
    assert.equal(keys.encryption_keys.length, 1);
    assert.match(keys.encryption_keys[0]!, BASE64_KEY);
    assert.match(keys.state_key, BASE64_KEY);
    assert.notEqual(keys.encryption_keys[0], keys.state_key);
    for (const value of [keys.encryption_keys[0]!, keys.state_key]) {
      assert.equal(Buffer.from(value, 'base64').length, 32);
      assert.ok(!first.stdout.includes(value) && !first.stderr.includes(value), 'printed a key');
    }

    const again = await runCli(['keys', 'generate', '--file', path], env);
    assert.equal(again.code, 1, show(again));
    assert.match(again.stderr, /already exists; refusing to overwrite a key file/);
    assert.equal(readFileSync(path, 'utf8'), content, 'the key file was changed');
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });
});

describe('nexus keys rotate', { timeout: 60_000 }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nexus-rotate-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('with a key file: adds a new primary first, keeps the old key and the state key', async () => {
    const path = join(dir, 'keys.json');
    const env = { ...baseEnv(), NEXUS_DATA_DIR: join(dir, 'data'), NEXUS_KEY_FILE: path };
    assert.equal((await runCli(['keys', 'generate', '--file', path], env)).code, 0);
    const before = readKeys(path);

    const rotated = await runCli(['keys', 'rotate'], env);
    assert.equal(rotated.code, 0, show(rotated));
    const after1 = readKeys(path);
    assert.equal(after1.version, 1);
    assert.equal(after1.encryption_keys.length, 2);
    assert.equal(after1.encryption_keys[1], before.encryption_keys[0], 'the old key must stay, second');
    assert.notEqual(after1.encryption_keys[0], before.encryption_keys[0]);
    assert.match(after1.encryption_keys[0]!, BASE64_KEY);
    assert.equal(after1.state_key, before.state_key, 'the state key must not change');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const newKid = kidOf(after1.encryption_keys[0]!);
    assert.match(
      rotated.stdout,
      new RegExp(`^Added key ${newKid} as the primary in .*; 1 older key\\(s\\) still decrypt\\.$`, 'm'),
    );
    assert.match(rotated.stdout, /nexus keys rewrap/);
    for (const value of [...after1.encryption_keys, after1.state_key]) {
      assert.ok(!rotated.stdout.includes(value) && !rotated.stderr.includes(value), 'printed a key');
    }

    // A second rotation stacks: newest first, every older key kept in order.
    const second = await runCli(['keys', 'rotate'], env);
    assert.equal(second.code, 0, show(second));
    const after2 = readKeys(path);
    assert.deepEqual(after2.encryption_keys.slice(1), after1.encryption_keys);
    assert.equal(after2.state_key, before.state_key);
  });

  it('with keys in the environment: prints a new key and the roll-out steps, never the current keys', async () => {
    const current = envKeys();
    const older = newKeyBase64();
    for (const keys of [
      current,
      { ENCRYPTION_KEYS: `${current.ENCRYPTION_KEY},${older}`, STATE_KEY: current.STATE_KEY },
    ]) {
      const env = {
        ...baseEnv(),
        NEXUS_DATA_DIR: join(dir, 'data-env'),
        NEXUS_ENV: 'production',
        BASE_URL: 'https://nexus.example',
        ...keys,
      };
      const result = await runCli(['keys', 'rotate'], env);
      assert.equal(result.code, 0, show(result));
      const match = /^New key (k[0-9a-f]{16}):\n\n {2}([A-Za-z0-9+/]{43}=)\n/.exec(result.stdout);
      assert.ok(match, show(result));
      const [, kid, value] = match;
      assert.equal(Buffer.from(value!, 'base64').length, 32);
      assert.equal(kidOf(value!), kid, 'the printed id is the id of the printed key');
      assert.match(result.stdout, /Append it to ENCRYPTION_KEYS on every replica/);
      assert.match(result.stdout, /Move it to the front of ENCRYPTION_KEYS/);
      assert.match(result.stdout, /Run `nexus keys rewrap`/);
      assert.match(result.stdout, /`nexus doctor`/);
      const output = result.stdout + result.stderr;
      for (const secret of [current.ENCRYPTION_KEY, current.STATE_KEY, older]) {
        assert.notEqual(value, secret);
        assert.ok(!output.includes(secret), 'printed an existing key');
      }
      // It cannot edit the environment, so it writes no file either.
      assert.equal(existsSync(join(dir, 'data-env', 'keys.json')), false);
    }
  });

  it('with no keys anywhere: exit 2, says how to get a key file, creates nothing', async () => {
    const env = { ...baseEnv(), NEXUS_DATA_DIR: join(dir, 'empty') };
    const result = await runCli(['keys', 'rotate'], env);
    assert.equal(result.code, 2, show(result));
    assert.match(result.stderr, /no key file to rotate: set NEXUS_KEY_FILE/);
    assert.equal(existsSync(join(dir, 'empty', 'keys.json')), false);
  });
});
