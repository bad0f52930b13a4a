/**
 * End-to-end: `nexus doctor` on a healthy production-like setup, and on the key problems it
 * must catch and explain: a missing key file, ciphertexts under a key that left the ring, and a
 * rotation that was never followed by a rewrap.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { readKeyFile } from '../src/crypto/key-file.ts';
import { keyIdOf } from '../src/crypto/keyring.ts';
import { readMigrations } from '../src/db/migrate.ts';
import {
  baseEnv,
  containerFor,
  killAllChildren,
  migrateDatabase,
  newKeyBase64,
  runCli,
  show,
} from './cli-helpers.ts';
import { createTestDatabase, DIALECT, type TestDatabase } from './harness.ts';

after(killAllChildren);

const kidOf = (base64: string) => keyIdOf(new Uint8Array(Buffer.from(base64, 'base64')));

interface Finding {
  level: 'ok' | 'warn' | 'fail';
  check: string;
  message: string;
  fix?: string;
}

describe('nexus doctor', { timeout: 120_000 }, () => {
  let db: TestDatabase;
  // Production-like settings that leave nothing to warn about.
  let prod: Record<string, string>;
  beforeEach(async () => {
    db = await createTestDatabase();
    prod = {
      ...baseEnv(),
      ...db.env,
      NEXUS_ENV: 'production',
      BASE_URL: 'https://nexus.example',
      ALLOWED_RETURN_DOMAINS: 'app.example',
    };
  });
  afterEach(() => db.drop());

  /** Migrates, and creates one admin key, with the given keys. */
  async function setUp(keys: Record<string, string>): Promise<void> {
    await migrateDatabase({ ...prod, ...keys });
    const created = await runCli(['admin-keys', 'create', '--name', 'ops'], { ...prod, ...keys });
    assert.equal(created.code, 0, show(created));
  }

  /** Stores `n` secrets through the broker's secret backend, sealed with the ring in `keys`. */
  async function storeSecrets(keys: Record<string, string>, n: number): Promise<void> {
    const container = containerFor({ ...prod, ...keys });
    try {
      for (let i = 0; i < n; i++) await container.secrets.put(`doctor/secret-${i}`, randomBytes(16));
    } finally {
      await container.close();
    }
  }

  it('a healthy setup: exit 0, every check ok, and no key printed', async () => {
    const keys = { ENCRYPTION_KEY: newKeyBase64(), STATE_KEY: newKeyBase64() };
    await setUp(keys);
    await storeSecrets(keys, 2);
    const result = await runCli(['doctor'], { ...prod, ...keys });
    assert.equal(result.code, 0, show(result));
    const expected = [
      /^\[ ok \] config: mode production, data directory /m,
      new RegExp(
        `^\\[ ok \\] keys: 1 encryption key\\(s\\) from environment; primary ${kidOf(keys.ENCRYPTION_KEY)}$`,
        'm',
      ),
      new RegExp(`^\\[ ok \\] database: ${DIALECT} reachable$`, 'm'),
      new RegExp(`^\\[ ok \\] migrations: ${readMigrations().length} applied, checksums match$`, 'm'),
      /^\[ ok \] secret backend: internal reachable$/m,
      /^\[ ok \] admin keys: 1 live admin key\(s\)$/m,
      /^All checks passed\.$/m,
    ];
    for (const line of expected) assert.match(result.stdout, line, show(result));
    assert.doesNotMatch(result.stdout, /\[WARN\]|\[FAIL\]/, show(result));
    for (const secret of Object.values(keys)) assert.ok(!(result.stdout + result.stderr).includes(secret));

    const asJson = await runCli(['doctor', '--json'], { ...prod, ...keys });
    assert.equal(asJson.code, 0, show(asJson));
    const report = JSON.parse(asJson.stdout) as { ok: boolean; findings: Finding[] };
    assert.equal(report.ok, true);
    assert.ok(report.findings.length >= 6);
    assert.ok(
      report.findings.every((f) => f.level === 'ok'),
      asJson.stdout,
    );
  });

  it('a data directory that cannot be made is a finding with its fix, also in --json, not a crash', async () => {
    // Review (2026-12-07): doctor died with a bare ENOTDIR and lost every finding.
    const file = join(db.dataDir, 'a-file');
    writeFileSync(file, 'not a directory');
    const env = {
      ...baseEnv(),
      NEXUS_ENV: 'production',
      BASE_URL: 'https://nexus.example',
      ALLOWED_RETURN_DOMAINS: 'app.example',
      ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      STATE_KEY: randomBytes(32).toString('base64'),
      NEXUS_DATA_DIR: join(file, 'sub'),
    };
    const result = await runCli(['doctor'], env);
    assert.equal(result.code, 1, show(result));
    assert.match(result.stdout, /^\[FAIL\] database: .*ENOTDIR/m);
    assert.match(result.stdout, /fix: check NEXUS_DATA_DIR is writable/);
    assert.match(result.stdout, /^\[ ok \] keys/m, 'the findings before it are kept');
    const json = await runCli(['doctor', '--json'], env);
    assert.equal(json.code, 1, show(json));
    const findings = JSON.parse(json.stdout) as { findings: Finding[] } | Finding[];
    const list = Array.isArray(findings) ? findings : findings.findings;
    assert.ok(list.some((f) => f.check === 'database' && f.level === 'fail'));
  });

  it('a missing key file in production: exit 1, says what is wrong and how to fix it', async () => {
    const missing = join(db.dataDir, 'nonexistent', 'keys.json');
    const result = await runCli(['doctor'], { ...prod, NEXUS_KEY_FILE: missing });
    assert.equal(result.code, 1, show(result));
    assert.match(
      result.stdout,
      new RegExp(`^\\[FAIL\\] keys: key file ${missing.replaceAll('.', '\\.')} does not exist`, 'm'),
    );
    assert.match(result.stdout, /^ {7}fix: generate keys with `nexus keys generate`$/m);
    assert.match(result.stdout, /^Some checks failed\.$/m);
    // The other checks still ran.
    assert.match(result.stdout, new RegExp(`^\\[ ok \\] database: ${DIALECT} reachable$`, 'm'));
    // doctor only looks: it must not have created the file.
    assert.equal(existsSync(missing), false);
    // The literal path of the brief: also fails, also creates nothing.
    const root = await runCli(['doctor'], { ...prod, NEXUS_KEY_FILE: '/nonexistent/keys.json' });
    assert.equal(root.code, 1, show(root));
    assert.match(root.stdout, /\[FAIL\] keys: key file \/nonexistent\/keys\.json does not exist/);
  });

  it('ciphertexts under a key missing from the ring: FAIL, "add that key back"; old key in the ring: WARN, "rewrap"', async () => {
    const keyA = newKeyBase64();
    const keyB = newKeyBase64();
    const state = newKeyBase64();
    await setUp({ ENCRYPTION_KEY: keyA, STATE_KEY: state });
    await storeSecrets({ ENCRYPTION_KEY: keyA, STATE_KEY: state }, 3);

    // Rotated (B first, A still there) but not rewrapped: a warning, not a failure.
    const rotated = await runCli(['doctor'], {
      ...prod,
      ENCRYPTION_KEYS: `${keyB},${keyA}`,
      STATE_KEY: state,
    });
    assert.equal(rotated.code, 0, show(rotated));
    assert.match(
      rotated.stdout,
      new RegExp(`^\\[WARN\\] ciphertexts: 3 stored secret\\(s\\) still use older key ${kidOf(keyA)}$`, 'm'),
    );
    assert.match(rotated.stdout, /^ {7}fix: run `nexus keys rewrap`$/m);

    // Key A dropped before the rewrap: those secrets cannot be opened any more.
    const dropped = await runCli(['doctor'], { ...prod, ENCRYPTION_KEY: keyB, STATE_KEY: state });
    assert.equal(dropped.code, 1, show(dropped));
    assert.match(
      dropped.stdout,
      new RegExp(
        `^\\[FAIL\\] ciphertexts: 3 stored secret\\(s\\) use key ${kidOf(keyA)}, which is not in the key ring$`,
        'm',
      ),
    );
    assert.match(dropped.stdout, /^ {7}fix: add that key back to ENCRYPTION_KEYS \(or the key file\)$/m);
    for (const secret of [keyA, keyB, state]) {
      assert.ok(!(dropped.stdout + dropped.stderr + rotated.stdout + rotated.stderr).includes(secret));
    }

    // Following the advice: rewrap with both keys, then key B alone is enough.
    const rewrap = await runCli(['keys', 'rewrap'], {
      ...prod,
      ENCRYPTION_KEYS: `${keyB},${keyA}`,
      STATE_KEY: state,
    });
    assert.equal(rewrap.code, 0, show(rewrap));
    const healed = await runCli(['doctor'], { ...prod, ENCRYPTION_KEY: keyB, STATE_KEY: state });
    assert.equal(healed.code, 0, show(healed));
    assert.doesNotMatch(healed.stdout, /ciphertexts/);
  });

  it('after `keys rotate` on a key file without a rewrap: WARN "run `nexus keys rewrap`"', async () => {
    const keyFile = join(db.dataDir, 'keys', 'nexus-keys.json');
    const env = { ...prod, NEXUS_KEY_FILE: keyFile };
    assert.equal((await runCli(['keys', 'generate', '--file', keyFile], env)).code, 0);
    await setUp({ NEXUS_KEY_FILE: keyFile });
    await storeSecrets({ NEXUS_KEY_FILE: keyFile }, 2);
    const oldKid = keyIdOf(readKeyFile(keyFile, true).encryptionKeys[0]!.reveal());

    const clean = await runCli(['doctor'], env);
    assert.equal(clean.code, 0, show(clean));
    assert.match(clean.stdout, new RegExp(`key file ${keyFile.replaceAll('.', '\\.')}; primary ${oldKid}`));
    assert.doesNotMatch(clean.stdout, /\[WARN\]|\[FAIL\]/, show(clean));

    assert.equal((await runCli(['keys', 'rotate'], env)).code, 0);
    const stale = await runCli(['doctor'], env);
    assert.equal(stale.code, 0, show(stale));
    assert.match(stale.stdout, /^\[ ok \] keys: 2 encryption key\(s\) from key file/m);
    assert.match(
      stale.stdout,
      new RegExp(`^\\[WARN\\] ciphertexts: 2 stored secret\\(s\\) still use older key ${oldKid}$`, 'm'),
    );
    assert.match(stale.stdout, /^ {7}fix: run `nexus keys rewrap`$/m);
  });
});
