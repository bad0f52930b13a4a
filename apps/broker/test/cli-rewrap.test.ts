/**
 * End-to-end: `nexus keys rewrap` after a rotation, interrupted hard (SIGKILL) and softly
 * (SIGINT), then resumed. No secret may be lost or left unreadable at any point.
 *
 * To interrupt reliably in the middle rather than racing a fast run, one row is made to stall
 * when rewrap updates it (`blockSecretUpdate`: a row lock on PostgreSQL, a slow trigger on
 * SQLite), so the run is always caught part-way through, with the rows before it committed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import type { SecretBytes } from '../src/config/secret-value.ts';
import { keyIdOfCiphertext, open } from '../src/crypto/envelope.ts';
import { newKey, readKeyFile } from '../src/crypto/key-file.ts';
import { createKeyRing, type KeyRing, keyIdOf } from '../src/crypto/keyring.ts';
import { migrate } from '../src/db/migrate.ts';
import { type RewrapProgress, rewrap } from '../src/modules/keys/rewrap.ts';
import { bindingFor, createInternalBackend } from '../src/modules/secrets/internal.backend.ts';
import {
  baseEnv,
  blockSecretUpdate,
  containerFor,
  killAllChildren,
  runCli,
  show,
  spawnCli,
  sqlOn,
} from './cli-helpers.ts';
import { createTestDatabase, type TestDatabase } from './harness.ts';

after(killAllChildren);

const pathOf = (i: number) => `rewrap/secret-${String(i).padStart(4, '0')}`;

/** Writes `count` secrets with distinct random values through the broker's own secret backend. */
async function writeSecrets(env: Record<string, string>, count: number): Promise<Map<string, Buffer>> {
  const originals = new Map<string, Buffer>();
  const container = containerFor(env);
  try {
    await migrate(container.db);
    for (let i = 0; i < count; i++) {
      const value = randomBytes(24 + (i % 17));
      originals.set(pathOf(i), value);
      await container.secrets.put(pathOf(i), value);
    }
  } finally {
    await container.close();
  }
  return originals;
}

/** The key id of every stored ciphertext, by path, read straight from the database. */
async function kidsByPath(db: TestDatabase): Promise<Map<string, string | undefined>> {
  const rows = await sqlOn<{ path: string; value: Uint8Array }>(db, 'SELECT path, value FROM secret_store');
  return new Map(rows.map((r) => [r.path, keyIdOfCiphertext(new Uint8Array(r.value))]));
}

const count = (kids: Map<string, string | undefined>, kid: string) =>
  [...kids.values()].filter((k) => k === kid).length;

/** Every secret decrypts to its original bytes with `ring`, read straight from the database. */
async function assertAllOpen(db: TestDatabase, ring: KeyRing, originals: Map<string, Buffer>): Promise<void> {
  const rows = await sqlOn<{ path: string; value: Uint8Array }>(db, 'SELECT path, value FROM secret_store');
  assert.equal(rows.length, originals.size);
  for (const row of rows) {
    const plain = open(ring, new Uint8Array(row.value), bindingFor(row.path));
    assert.deepEqual(Buffer.from(plain), originals.get(row.path), `secret ${row.path} changed`);
  }
}

const PROGRESS = /^rewrap: (\d+)% \((\d+)\/(\d+)\)$/gm;

/** The highest `done` count the progress lines on stderr have reported so far. */
function reportedDone(stderr: string): number {
  return Math.max(0, ...[...stderr.matchAll(PROGRESS)].map((m) => Number(m[2])));
}

describe('nexus keys rewrap after a rotation', { timeout: 120_000 }, () => {
  let db: TestDatabase;
  let env: Record<string, string>;
  let keyFile: string;
  beforeEach(async () => {
    db = await createTestDatabase();
    keyFile = join(db.dataDir, 'ring', 'keys.json');
    env = {
      ...baseEnv(),
      ...db.env,
      NEXUS_ENV: 'production',
      BASE_URL: 'https://nexus.example',
      NEXUS_KEY_FILE: keyFile,
    };
    const generated = await runCli(['keys', 'generate', '--file', keyFile], env);
    assert.equal(generated.code, 0, show(generated));
  });
  afterEach(async () => {
    killAllChildren();
    await db.drop();
  });

  /** Rotates with the CLI; returns the new primary's id, the old one's, and the new key alone. */
  async function rotate(): Promise<{ newKid: string; oldKid: string; newOnly: KeyRing }> {
    const result = await runCli(['keys', 'rotate'], env);
    assert.equal(result.code, 0, show(result));
    const material = readKeyFile(keyFile, true);
    assert.equal(material.encryptionKeys.length, 2);
    const [fresh, old] = material.encryptionKeys as [SecretBytes, SecretBytes];
    return {
      newKid: keyIdOf(fresh.reveal()),
      oldKid: keyIdOf(old.reveal()),
      newOnly: createKeyRing([fresh]),
    };
  }

  it('killed with SIGKILL mid-run loses nothing; running it again finishes the job', async () => {
    const total = 300;
    const originals = await writeSecrets(env, total);
    const { newKid, oldKid, newOnly } = await rotate();
    assert.equal(count(await kidsByPath(db), oldKid), total);

    // Row 150 (in path order) stalls; SQLite: ~30 s of work, far longer than we wait for it.
    const blocker = await blockSecretUpdate(db, pathOf(149), 3e8);
    const run = spawnCli(['keys', 'rewrap', '--batch-size', '1'], env);
    let done: number;
    try {
      // Progress is reported after each committed batch: wait until it shows real progress.
      await run.waitFor('stderr', /^rewrap: [1-9]0% \(\d+\/300\)$/m, 15_000);
      done = reportedDone(run.stderr());
      run.kill('SIGKILL');
      const killed = await run.wait();
      assert.equal(killed.signal, 'SIGKILL', show(killed));
      assert.doesNotMatch(killed.stdout, /re-encrypted/, 'it finished before it could be interrupted');
    } finally {
      run.kill('SIGKILL');
      await blocker.release();
    }

    // Some, not all: every batch it reported is durable, the stalled row and later are not.
    const midway = await kidsByPath(db);
    const rewrapped = count(midway, newKid);
    assert.ok(done >= 30, `progress reported ${done}`);
    assert.ok(rewrapped >= done, `reported ${done} rows done but only ${rewrapped} carry the new key`);
    assert.ok(rewrapped <= 149, `${rewrapped} rows rewrapped: the stalled row must not have been`);
    assert.equal(count(midway, oldKid), total - rewrapped, 'every row carries one of the two keys');
    assert.equal(midway.get(pathOf(149)), oldKid);
    // Nothing is unreadable in the meantime: the two-key ring opens everything.
    await assertAllOpen(db, createKeyRing(readKeyFile(keyFile, true).encryptionKeys), originals);

    const resumed = await runCli(['keys', 'rewrap'], env);
    assert.equal(resumed.code, 0, show(resumed));
    assert.match(
      resumed.stdout,
      new RegExp(
        `^Primary key ${newKid}: ${total - rewrapped} re-encrypted, ${rewrapped} already current, 0 failed\\.$`,
        'm',
      ),
      show(resumed),
    );
    assert.match(resumed.stderr, /^rewrap: 100% \(300\/300\)$/m);

    const end = await kidsByPath(db);
    assert.equal(count(end, newKid), total, 'every ciphertext carries the new primary key id');
    // The new key alone opens every secret, to its original value: the old key is no longer needed.
    await assertAllOpen(db, newOnly, originals);
    // And so does the broker itself, reading through its secret backend.
    const container = containerFor(env);
    try {
      for (const [path, value] of originals) {
        const got = await container.secrets.get(path);
        assert.deepEqual(Buffer.from(got!.value), value, path);
      }
    } finally {
      await container.close();
    }

    const again = await runCli(['keys', 'rewrap', '--json'], env);
    assert.equal(again.code, 0, show(again));
    const summary = JSON.parse(again.stdout) as Record<string, unknown>;
    assert.equal(summary.primary, newKid);
    assert.equal(summary.rewrapped, 0);
    assert.equal(summary.alreadyCurrent, total);
    assert.deepEqual(summary.failed, []);
    assert.equal(summary.interrupted, false);
  });

  it('SIGINT stops after the current batch with exit 130 and says to run it again', async () => {
    const total = 100;
    const originals = await writeSecrets(env, total);
    const { newKid, oldKid, newOnly } = await rotate();

    // Row 41 stalls for about a second on SQLite, or until released on PostgreSQL.
    const blocker = await blockSecretUpdate(db, pathOf(40), 1e7);
    const run = spawnCli(['keys', 'rewrap', '--batch-size', '1'], env);
    let interrupted: Awaited<ReturnType<typeof run.wait>>;
    try {
      await run.waitFor('stderr', /^rewrap: 10% \(10\/100\)$/m, 15_000);
      run.kill('SIGINT');
      // The batch in flight finishes; the message comes once the signal is seen.
      await run.waitFor('stderr', /stopping after the current batch/, 15_000).catch(() => {});
      await blocker.release();
      interrupted = await run.wait(15_000);
    } finally {
      run.kill('SIGKILL');
      await blocker.release();
    }
    assert.equal(interrupted.code, 130, show(interrupted));
    assert.match(
      interrupted.stderr,
      /stopping after the current batch; run `nexus keys rewrap` again to resume/,
      show(interrupted),
    );
    assert.match(interrupted.stdout, /Interrupted: run `nexus keys rewrap` again to finish\./);
    const midway = await kidsByPath(db);
    const rewrapped = count(midway, newKid);
    assert.ok(rewrapped >= 10 && rewrapped < total, `${rewrapped} rewrapped`);
    assert.equal(count(midway, oldKid), total - rewrapped);
    assert.match(interrupted.stdout, new RegExp(`^Primary key ${newKid}: ${rewrapped} re-encrypted`, 'm'));

    const resumed = await runCli(['keys', 'rewrap'], env);
    assert.equal(resumed.code, 0, show(resumed));
    assert.match(
      resumed.stdout,
      new RegExp(`${total - rewrapped} re-encrypted, ${rewrapped} already current`),
    );
    assert.equal(count(await kidsByPath(db), newKid), total);
    await assertAllOpen(db, newOnly, originals);
  });
});

/** A database, the key its secrets are written under, the key to move them to, and the env. */
async function libraryRun() {
  const db = await createTestDatabase();
  const oldKey = newKey();
  const freshKey = newKey();
  const env = {
    ...db.env,
    NEXUS_ENV: 'test',
    ENCRYPTION_KEY: Buffer.from(oldKey.reveal()).toString('base64'),
    STATE_KEY: Buffer.from(newKey().reveal()).toString('base64'),
  };
  return { db, oldKey, freshKey, env };
}

describe('rewrap() as a library: abort after the first batch, then finish', { timeout: 60_000 }, () => {
  it('stops at a batch boundary when the signal fires, and a second call completes the rest', async () => {
    const { db, oldKey, freshKey, env } = await libraryRun();
    const total = 120;
    const originals = await writeSecrets(env, total);
    const container = containerFor(env);
    try {
      const ring = createKeyRing([freshKey, oldKey]);
      const controller = new AbortController();
      const progress: RewrapProgress[] = [];
      const first = await rewrap(container.db, ring, {
        batchSize: 25,
        signal: controller.signal,
        onProgress: (p) => {
          progress.push(p);
          controller.abort();
        },
      });
      assert.equal(progress.length, 1);
      assert.deepEqual(progress[0], { table: 'secret_store', scanned: 25, total, rewrapped: 25 });
      assert.equal(first.interrupted, true);
      assert.equal(first.scanned, 25);
      assert.equal(first.rewrapped, 25);
      assert.deepEqual(first.failed, []);
      assert.equal(count(await kidsByPath(db), ring.primaryKid), 25);

      const second = await rewrap(container.db, ring, { batchSize: 25 });
      assert.equal(second.interrupted, false);
      assert.equal(second.rewrapped, total - 25);
      assert.equal(second.alreadyCurrent, 25);
      assert.deepEqual(second.failed, []);
      assert.equal(count(await kidsByPath(db), ring.primaryKid), total);
      await assertAllOpen(db, createKeyRing([freshKey]), originals);
    } finally {
      await container.close();
      await db.drop();
    }
  });
});

describe('rewrap() racing a writer', { timeout: 60_000 }, () => {
  it('reports a value another process rewrote under an older key meanwhile, and counts one rewritten under the new key', async () => {
    const { db, oldKey, freshKey, env } = await libraryRun();
    await writeSecrets(env, 3);
    const container = containerFor(env);
    const oldRing = createKeyRing([oldKey]);
    const ring = createKeyRing([freshKey, oldKey]);
    const kysely = container.db.kysely as unknown as { transaction: () => unknown };
    const transaction = kysely.transaction.bind(kysely);
    try {
      let raced = false;
      // Between the batch's read and its update, two writers commit: a process that has not yet
      // taken the new key (secret 0, under the old one) and one that has (secret 1).
      kysely.transaction = () => {
        const real = transaction() as { execute: (fn: unknown) => Promise<unknown> };
        return {
          execute: async (fn: unknown) => {
            if (!raced) {
              raced = true;
              await createInternalBackend(container.db, oldRing).put(pathOf(0), Buffer.from('old-writer'));
              await createInternalBackend(container.db, ring).put(pathOf(1), Buffer.from('new-writer'));
            }
            return real.execute(fn);
          },
        };
      };
      const first = await rewrap(container.db, ring);
      kysely.transaction = transaction;
      assert.equal(first.rewrapped, 1, 'secret 2');
      assert.equal(first.alreadyCurrent, 1, 'secret 1, written under the new key meanwhile');
      assert.equal(first.failed.length, 1, JSON.stringify(first.failed));
      assert.match(first.failed[0]!.reason, /written by another process .* run again/);
      assert.equal((await kidsByPath(db)).get(pathOf(0)), oldRing.primaryKid);

      const second = await rewrap(container.db, ring);
      assert.deepEqual(second.failed, []);
      assert.equal(second.rewrapped, 1);
      assert.equal(count(await kidsByPath(db), ring.primaryKid), 3);
    } finally {
      kysely.transaction = transaction;
      await container.close();
      await db.drop();
    }
  });
});
