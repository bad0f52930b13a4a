/**
 * The one conformance suite every secret backend passes (STYLE rule 10). Call
 * `secretBackendConformance(target)` from a test file: it registers `node:test` tests that run
 * against the backend the target opens. Paths stay within `[A-Za-z0-9/_.-]`, the characters every
 * supported backend accepts in a name; each test works under its own random base path, so the
 * suite can share a server with other runs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { NexusError } from '../../src/errors/nexus-error.ts';
import { MAX_SECRET_BYTES, type SecretBackend } from '../../src/modules/secrets/secret-backend.ts';
import { createUserSecrets } from '../../src/modules/user-secrets/user-secrets.service.ts';
import { createUserSecretsStore } from '../../src/modules/user-secrets/user-secrets.store.ts';
import { startBroker } from '../harness.ts';

export interface ConformanceTarget {
  /** Shown in the test names, e.g. `internal (sqlite)` or `aws-secrets-manager (moto)`. */
  readonly name: string;
  /** Opens the backend under test; called once before the tests. */
  open(): Promise<SecretBackend>;
  /** Releases what `open` started (after the backend is closed). */
  teardown?(): Promise<void>;
  /** A backend of the same kind whose server cannot be reached. */
  unreachable?(): Promise<SecretBackend>;
  /** A backend of the same kind whose credentials the server refuses. */
  denied?(): Promise<SecretBackend>;
}

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b);
const sorted = (xs: string[]) => [...xs].sort();

/** Asserts a stable code, the catalogue's caller-safe message, and the cause kept in `detail`. */
export async function rejectsWithCode(promise: Promise<unknown>, code: string, leak?: string) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof NexusError, `expected a NexusError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (leak !== undefined) assert.ok(!error.message.includes(leak), 'backend text reached the message');
    return true;
  });
}

export function secretBackendConformance(target: ConformanceTarget): void {
  describe(`secret backend conformance: ${target.name}`, () => {
    let s: SecretBackend;
    let n = 0;
    const run = `c${randomBytes(4).toString('hex')}`;
    /** A fresh base path per test. */
    const base = () => `${run}/t${++n}`;

    before(async () => {
      s = await target.open();
    });
    after(async () => {
      await s?.close();
      await target.teardown?.();
    });

    it('is healthy', async () => {
      await s.healthCheck();
    });

    it('carries user secrets (issue #7): every version sealed, each read back', async () => {
      const broker = await startBroker();
      try {
        const secrets = createUserSecrets({
          store: createUserSecretsStore(broker.container.db),
          backend: s,
          ring: broker.container.keys.userSecretsRing,
          audit: broker.container.audit,
        });
        const ctx = { actor: 'conformance' };
        const owner = { userId: `u-${run}`, zone: 'default' };
        await secrets.put(ctx, owner, { name: 'conformance', value: 'plain-one' });
        await secrets.put(ctx, owner, { name: 'conformance', value: 'plain-two ✓' });
        assert.equal((await secrets.read(ctx, owner, 'conformance')).value, 'plain-two ✓');
        assert.equal((await secrets.read(ctx, owner, 'conformance', 1)).value, 'plain-one');
        const paths = await s.list('user-secrets/', { limit: 100 });
        assert.ok(paths.length >= 2);
        for (const path of paths) {
          const raw = await s.get(path);
          assert.ok(raw !== null && !Buffer.from(raw.value).toString('latin1').includes('plain-'), 'sealed');
        }
      } finally {
        await broker.close();
      }
    });

    it('round-trips bytes, and put returns the version get reports', async () => {
      const p = `${base()}/secret`;
      const value = new Uint8Array(256).map((_, i) => i);
      const { version } = await s.put(p, value);
      assert.equal(typeof version, 'string');
      const got = await s.get(p);
      assert.deepEqual(got?.value, value);
      assert.equal(got?.version, version);
    });

    it('overwrites: the latest value wins and each write gets a new version', async () => {
      const p = `${base()}/secret`;
      const v1 = await s.put(p, bytes('one'));
      const v2 = await s.put(p, bytes('two'));
      const v3 = await s.put(p, bytes('three'));
      assert.equal(new Set([v1.version, v2.version, v3.version]).size, 3);
      const got = await s.get(p);
      assert.equal(text(got?.value), 'three');
      assert.equal(got?.version, v3.version);
    });

    it('writes with `fresh` like without: a new path is created, an existing one gets a new version', async () => {
      const p = `${base()}/fresh`;
      const v1 = await s.put(p, bytes('created'), { fresh: true });
      assert.equal(text((await s.get(p))?.value), 'created');
      // Not so fresh after all (another writer made it first): still written, as a new version.
      const v2 = await s.put(p, bytes('again'), { fresh: true });
      assert.notEqual(v2.version, v1.version);
      const got = await s.get(p);
      assert.equal(text(got?.value), 'again');
      assert.equal(got?.version, v2.version);
    });

    it('reads a given version where the backend keeps versions, and null for an unknown one', async () => {
      const p = `${base()}/secret`;
      const v1 = await s.put(p, bytes('first'));
      const v2 = await s.put(p, bytes('second'));
      assert.equal(text((await s.get(p, { version: v2.version }))?.value), 'second');
      const old = await s.get(p, { version: v1.version });
      if (s.keepsVersions) {
        assert.equal(text(old?.value), 'first');
        assert.equal(old?.version, v1.version);
      } else {
        assert.equal(old, null);
      }
      assert.equal(await s.get(`${base()}/never`, { version: v1.version }), null);
    });

    it('answers null for a path that was never written', async () => {
      const b = base();
      assert.equal(await s.get(`${b}/missing`), null);
      assert.equal(await s.get(`${b}/missing/deeper`), null);
      await s.put(`${b}/present`, bytes('x'));
      assert.equal(await s.get(`${b}/presen`), null, 'no prefix match on get');
    });

    it('deletes idempotently, and a deleted path can be written again', async () => {
      const p = `${base()}/secret`;
      await s.delete(p);
      await s.put(p, bytes('v'));
      await s.delete(p);
      assert.equal(await s.get(p), null);
      await s.delete(p);
      await s.put(p, bytes('again'));
      assert.equal(text((await s.get(p))?.value), 'again');
    });

    it('lists by prefix, sorted, without siblings that only share the text', async () => {
      const b = base();
      const inside = [`${b}/p/c`, `${b}/p/a`, `${b}/p/b/deep`, `${b}/p/A-b_c.d`];
      for (const p of [...inside, `${b}/p2/x`, `${b}/q/y`]) await s.put(p, bytes(p));
      assert.deepEqual(await s.list(`${b}/p/`), sorted(inside));
      assert.deepEqual(await s.list(`${b}/p`), sorted([...inside, `${b}/p2/x`]));
      assert.deepEqual(await s.list(`${b}/none/`), []);
      await s.delete(`${b}/p/a`);
      assert.deepEqual(await s.list(`${b}/p/`), sorted(inside.filter((p) => p !== `${b}/p/a`)));
    });

    it('pages through a listing with limit and after', async () => {
      const b = base();
      const all = Array.from({ length: 23 }, (_, i) => `${b}/k${String(i).padStart(2, '0')}`);
      await Promise.all(all.map((p) => s.put(p, bytes(p))));
      const pages: string[][] = [];
      let last: string | undefined;
      for (;;) {
        const page = await s.list(`${b}/`, { limit: 10, ...(last === undefined ? {} : { after: last }) });
        if (page.length === 0) break;
        pages.push(page);
        last = page.at(-1);
      }
      assert.deepEqual(
        pages.map((p) => p.length),
        [10, 10, 3],
      );
      assert.deepEqual(pages.flat(), all);
      assert.deepEqual(await s.list(`${b}/`, { after: all[20] }), all.slice(21));
    });

    it('stores a 64 KiB value and refuses a larger one with secret_too_large, storing nothing', async () => {
      const b = base();
      const big = randomBytes(MAX_SECRET_BYTES);
      await s.put(`${b}/big`, big);
      assert.deepEqual(Buffer.from((await s.get(`${b}/big`))?.value ?? []), big);
      await rejectsWithCode(s.put(`${b}/huge`, new Uint8Array(MAX_SECRET_BYTES + 1)), 'secret_too_large');
      assert.equal(await s.get(`${b}/huge`), null);
    });

    it('round-trips unicode text, and refuses an empty value with secret_value_empty', async () => {
      const b = base();
      const value = 'ünïcødé 🔑 中文 \u0000 \r\n "quotes" \\ ';
      await s.put(`${b}/u`, bytes(value));
      assert.equal(text((await s.get(`${b}/u`))?.value), value);
      await rejectsWithCode(s.put(`${b}/empty`, new Uint8Array()), 'secret_value_empty');
      assert.equal(await s.get(`${b}/empty`), null);
    });

    it('survives concurrent writes to one path and to many paths', async () => {
      const b = base();
      const values = Array.from({ length: 8 }, (_, i) => `value-${i}`);
      const results = await Promise.all(values.map((v) => s.put(`${b}/same`, bytes(v))));
      assert.equal(new Set(results.map((r) => r.version)).size, values.length, 'distinct versions');
      const final = await s.get(`${b}/same`);
      assert.ok(values.includes(text(final?.value)));
      assert.ok(results.some((r) => r.version === final?.version));
      const many = values.map((v) => `${b}/many/${v}`);
      await Promise.all(many.map((p) => s.put(p, bytes(p))));
      for (const p of many) assert.equal(text((await s.get(p))?.value), p);
      assert.deepEqual(await s.list(`${b}/many/`), sorted(many));
    });

    it('refuses invalid paths with secret_path_invalid', async () => {
      for (const bad of ['', '/abs', 'a//b', 'trailing/', 'x'.repeat(513), 'ctl\u0001char']) {
        await rejectsWithCode(s.put(bad, bytes('v')), 'secret_path_invalid');
        await rejectsWithCode(s.get(bad), 'secret_path_invalid');
        await rejectsWithCode(s.delete(bad), 'secret_path_invalid');
      }
      await rejectsWithCode(s.list('/abs'), 'secret_path_invalid');
    });

    it('refuses `.` and `..` segments in paths and list prefixes', async () => {
      for (const bad of ['.', '..', 'a/../b', 'a/./b', '../x', 'a/..', 'a/.']) {
        await rejectsWithCode(s.put(bad, bytes('v')), 'secret_path_invalid');
        await rejectsWithCode(s.get(bad), 'secret_path_invalid');
        await rejectsWithCode(s.delete(bad), 'secret_path_invalid');
      }
      for (const bad of ['../', 'a/../', './a', 'a/./b/'])
        await rejectsWithCode(s.list(bad), 'secret_path_invalid');
      // Dots inside a segment are ordinary characters.
      const b = base();
      await s.put(`${b}/dots/v1.2/file.txt`, bytes('v'));
      assert.equal(text((await s.get(`${b}/dots/v1.2/file.txt`))?.value), 'v');
    });

    if (target.unreachable) {
      const open = target.unreachable;
      it('maps an unreachable server to secret_backend_unavailable', async () => {
        const dead = await open();
        try {
          await rejectsWithCode(dead.healthCheck(), 'secret_backend_unavailable', 'ECONNREFUSED');
          await rejectsWithCode(dead.get('any/path'), 'secret_backend_unavailable', 'ECONNREFUSED');
          await rejectsWithCode(dead.put('any/path', bytes('v')), 'secret_backend_unavailable');
        } finally {
          await dead.close();
        }
      });
    }

    if (target.denied) {
      const open = target.denied;
      it('maps refused credentials to secret_backend_denied, keeping the server text in detail', async () => {
        const refused = await open();
        try {
          // One at a time: a second call started early would reject unobserved while the first is awaited.
          for (const call of [() => refused.healthCheck(), () => refused.get('any/path')]) {
            await assert.rejects(call(), (error: unknown) => {
              assert.ok(error instanceof NexusError);
              assert.equal(error.code, 'secret_backend_denied');
              assert.equal(
                error.message,
                "The secret backend refused the broker's credentials or permissions.",
              );
              assert.ok((error.detail ?? '').length > 0, 'the backend text is kept in detail');
              return true;
            });
          }
        } finally {
          await refused.close();
        }
      });
    }
  });
}
