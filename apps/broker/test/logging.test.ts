import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createAccessLog, createLogger } from '../src/http/logger.ts';
import { json, startBroker, type TestBroker } from './harness.ts';

/**
 * Plants recognisable secrets everywhere a careless broker might log them (headers, bodies,
 * query strings, error paths) and scans every log line for any part of them.
 */
describe('logs never contain secrets', () => {
  let broker: TestBroker;
  const planted = {
    clientSecret: 'PLANTED-client-secret-7f3a9c',
    wrongKey: 'PLANTED-wrong-api-key-0b1c2d3e4f',
    queryCode: 'PLANTED-query-code-55aa',
    patchedSecret: 'PLANTED-patched-secret-e4e4',
  };
  before(async () => {
    broker = await startBroker({ env: { LOG_LEVEL: 'trace' } });
  });
  after(() => broker.close());

  it('scans every line after a realistic session', async () => {
    const created = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: {
          name: 'acme',
          client_id: 'cid',
          client_secret: planted.clientSecret,
          auth_url: 'https://a.example/auth',
          token_url: 'https://a.example/token',
        },
      },
    });
    assert.equal(created.statusCode, 201);
    const { id } = json<{ id: string }>(created);
    await broker.request({
      method: 'PATCH',
      url: `/providers/${id}`,
      payload: { profile: { client_secret: planted.patchedSecret } },
    });
    // A rejected write whose body carries the secret.
    await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: { name: 'BAD NAME', client_secret: planted.clientSecret } },
    });
    await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: { name: 'static', auth_type: 'api_key', client_secret: planted.clientSecret } },
    });
    // Wrong credentials in both headers.
    await broker.request({ method: 'GET', url: '/providers', key: planted.wrongKey });
    await broker.request({
      method: 'GET',
      url: '/providers',
      key: null,
      headers: { authorization: `Bearer ${planted.wrongKey}` },
    });
    // Secrets in a query string (as an OAuth callback carries a code).
    await broker.request({ method: 'GET', url: `/auth/callback?code=${planted.queryCode}&state=x` });
    await broker.request({ method: 'GET', url: `/providers?code=${planted.queryCode}` });
    // The admin key itself, on every request above.
    await broker.request({ method: 'GET', url: `/providers/${id}` });
    // A leaked admin key pasted into the path to revoke it: the path is logged, the key's secret not.
    const leaked = json<{ key: string }>(
      await broker.request({ method: 'POST', url: '/admin/v1/admin-keys', payload: { name: 'leaked' } }),
    ).key;
    await broker.request({ method: 'DELETE', url: `/admin/v1/admin-keys/${leaked}` });

    // The access line is written in onResponse, which may run just after inject resolves.
    const completedLines = () => broker.logs.filter((l) => l.includes('"request completed"')).length;
    for (let i = 0; i < 100 && completedLines() < 11; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(completedLines(), 11, 'one access-log line per request');
    assert.ok(broker.logs.some((l) => l.includes(`/admin/v1/admin-keys/${leaked.slice(0, 21)}[redacted]`)));
    const everything = broker.logs.join('\n');
    const needles = [
      ...Object.values(planted),
      leaked.slice(21),
      broker.adminKey,
      broker.env.ENCRYPTION_KEY!,
      broker.env.STATE_KEY!,
    ];
    for (const needle of needles) {
      // Any 12-character window of a secret counts as a leak.
      for (let i = 0; i + 12 <= needle.length; i += 6) {
        assert.ok(
          !everything.includes(needle.slice(i, i + 12)),
          `log contains part of ${needle.slice(0, 10)}…`,
        );
      }
    }
  });

  it('logs each request with its id, method, path and status', () => {
    const completed = broker.logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'request completed');
    assert.ok(completed.length > 5);
    for (const line of completed) {
      assert.equal(typeof line.request_id, 'string');
      assert.equal(typeof (line.res as { status: number }).status, 'number');
    }
  });

  it('writes the access line as one JSON object, whatever characters a caller put in its fields', () => {
    const lines: string[] = [];
    const logger = createLogger('info', { write: (line: string) => void lines.push(line) });
    const accessLog = createAccessLog(logger);
    const odd = [
      '/p/"quoted"',
      '/p/back\\slash',
      '/p/\u0001ctl',
      '/p/\u00e9t\u00e9',
      '/p/\ud83d\ude00',
      '/plain/path-1',
    ];
    for (const path of odd)
      accessLog({
        requestId: 'req-1',
        method: 'GET',
        url: `${path}?code=secret`,
        ip: '::1',
        status: 200,
        ms: 1.5,
      });
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as { req: { path: string } }).req.path),
      odd,
      'each path as sent, without its query string',
    );
    assert.ok(lines.every((l) => !l.includes('secret')));
  });
});
