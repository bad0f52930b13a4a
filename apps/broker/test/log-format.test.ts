/**
 * Issue #24: logs are JSON for collectors and readable on a developer's terminal (LOG_FORMAT).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { prettyDestination } from '../src/http/logger.ts';
import { baseEnv, freePort, killAllChildren, show, spawnCli } from './cli-helpers.ts';
import { createTestDatabase, type TestDatabase } from './harness.ts';

describe('LOG_FORMAT: which logs a process writes', () => {
  it('auto: readable on a terminal in development, JSON in production or into a pipe', () => {
    const dev = { production: false, terminal: true };
    assert.ok(prettyDestination('auto', dev) !== undefined);
    assert.equal(prettyDestination('auto', { ...dev, production: true }), undefined);
    assert.equal(prettyDestination('auto', { ...dev, terminal: false }), undefined);
    assert.equal(prettyDestination('json', dev), undefined);
    assert.ok(prettyDestination('pretty', { production: true, terminal: false }) !== undefined);
  });
});

describe('nexus serve with LOG_FORMAT', { timeout: 60_000 }, () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => {
    killAllChildren();
    await db.drop();
  });

  const serve = async (format: string) => {
    const port = await freePort();
    const broker = spawnCli(['serve', '--no-worker'], {
      ...baseEnv(),
      ...db.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_FORMAT: format,
    });
    await broker.waitFor('stdout', /nexus ready/, 15_000);
    await fetch(`http://127.0.0.1:${port}/health?code=planted-query-secret`);
    broker.kill('SIGTERM');
    const result = await broker.wait(15_000);
    assert.equal(result.code, 0, show(result));
    return result.stdout;
  };

  it('pretty: readable lines with level, message and fields, the access line included, no JSON', async () => {
    const out = await serve('pretty');
    const lines = out.split('\n').filter((l) => l.trim() !== '');
    assert.ok(!lines.some((l) => l.startsWith('{"level"')), out);
    assert.match(out, /INFO.*nexus ready/);
    assert.match(out, /INFO.*request completed/);
    assert.match(out, /"path": "\/health"/);
    assert.ok(!out.includes('planted-query-secret'), 'the query string stays out of the log');
  });

  it('json (and auto into a pipe): one JSON object per line', async () => {
    for (const format of ['json', 'auto']) {
      const lines = (await serve(format)).split('\n').filter((l) => l.startsWith('{'));
      assert.ok(lines.length > 3);
      const parsed = lines.map((l) => JSON.parse(l) as { msg: string });
      assert.ok(parsed.some((l) => l.msg === 'nexus ready'));
      assert.ok(parsed.some((l) => l.msg === 'request completed'));
    }
  });
});
