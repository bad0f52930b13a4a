/**
 * maintainWebSocket when the credential expires or is refused: refused by the server (close 3000,
 * handshake 401), or refreshed ahead of expiry in band or by reconnecting (issue #17). Tokens are made
 * short-lived by the testbed (`/connect` with `token_ttl`), and its servers enforce the expiry.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import {
  type BridgeMetrics,
  CredentialRefreshedError,
  CredentialRefusedError,
  type TokenResponse,
} from '../src/index.ts';
import { startTestbed, type Testbed } from './testbed.ts';
import {
  abortAll,
  agentClient,
  eventually,
  FAST,
  label,
  maintain,
  Recorder,
  sleepMs,
  wsEndpoint,
  wsStats,
} from './ws-helpers.ts';

let tb: Testbed;
before(async () => {
  tb = await startTestbed();
});
afterEach(abortAll);
after(async () => {
  await tb?.stop();
});

/** Counts the metrics callbacks as `name:label`. */
function countingMetrics() {
  const counts = new Map<string, number>();
  const bump = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
  const metrics: BridgeMetrics = {
    disconnect: (_t, reason) => bump(`disconnect:${reason}`),
    tokenRefresh: (_t, result) => bump(`refresh:${result}`),
  };
  return { metrics, count: (key: string) => counts.get(key) ?? 0 };
}

/** A new oauth2 connection whose tokens live `seconds`, and its first token's expiry (ms). */
async function connectShortLived(seconds: number): Promise<{ id: string; expires: number }> {
  const id = await tb.connect('oauth2', undefined, seconds);
  const token = await agentClient(tb).getToken(id);
  assert.ok(token.expires_at !== null);
  const expires = Date.parse(token.expires_at);
  assert.ok(
    expires - Date.now() <= seconds * 1000 + 1000,
    `the token is not short-lived: ${token.expires_at}`,
  );
  return { id, expires };
}

// The server refuses a token it was told has expired (close 3000): the bridge has the broker refresh
// it at the provider and connects again at once with the new one.
test('close 3000 (server-side expiry): one refresh, reconnected at once', async () => {
  const id = await tb.connect('oauth2');
  const lbl = label('expired');
  const rec = new Recorder();
  const { metrics, count } = countingMetrics();
  const m = maintain(tb, id, wsEndpoint(tb, 'oauth2', lbl), rec, {
    retry: { minBackoffMs: 2000, maxBackoffMs: 4000 },
    metrics,
  });
  await eventually('welcome', 20_000, () => rec.welcomes() === 1);
  const before = (await tb.stats()).idp.refresh_token;
  const start = Date.now();
  const { ended } = await tb.control<{ ended: number }>('POST', '/idp/expire', { connection_id: id });
  assert.equal(ended, 1);
  await eventually('a connection with the refreshed token', 20_000, () => rec.welcomes() === 2);
  // At once: no backoff (minBackoffMs is 2 s here) for a refused credential that was replaced.
  assert.ok(Date.now() - start < 1800, `reconnected after ${Date.now() - start} ms`);
  const s = await tb.stats();
  const ws = s.ws[lbl]!;
  assert.equal(ws.unauthorized, 1);
  assert.equal(ws.opened, 2);
  assert.equal(ws.credentials, 2);
  assert.equal(ws.closed['3000'], 1);
  assert.equal(s.idp.refresh_token, before + 1);
  const last = rec.lastDisconnect();
  assert.ok(last instanceof CredentialRefusedError && last.closeCode === 3000, String(last));
  assert.equal(count('disconnect:unauthorized'), 1);
  assert.equal(count('refresh:ok'), 1);
  await rec.echo('with the new token');
  m.abort();
  await m.wait();
});

// A handshake answered 401 forces one refresh, and the new credential is tried at once.
test('a handshake answered 401: one refresh, then the next handshake succeeds', async () => {
  const id = await tb.connect('oauth2');
  const lbl = label('hs401');
  const rec = new Recorder();
  const m = maintain(tb, id, wsEndpoint(tb, 'oauth2', lbl), rec, { retry: FAST });
  await eventually('welcome', 20_000, () => rec.welcomes() === 1);
  const before = (await tb.stats()).idp.refresh_token;
  await tb.control('POST', '/ws/refuse-next', { label: lbl, count: 1, status: 401 });
  await tb.control('POST', '/ws/drop', { label: lbl });
  await eventually('a second connection', 20_000, () => rec.welcomes() === 2);
  const s = await tb.stats();
  assert.deepEqual(
    s.ws[lbl]!.handshakes.map((h) => h.status),
    [101, 401, 101],
  );
  assert.equal(s.ws[lbl]!.credentials, 2, 'the connection after the 401 used a new credential');
  assert.equal(s.idp.refresh_token, before + 1);
  m.abort();
  await m.wait();
});

// A short-lived token is refreshed before it expires and handed to the server in band: the
// connection is never closed, and outlives the token it was opened with.
test('refresh ahead of expiry, in band: the connection outlives its first token', async () => {
  const { id, expires } = await connectShortLived(12);
  const lbl = label('inband');
  const rec = new Recorder();
  const { metrics, count } = countingMetrics();
  const reauths: TokenResponse[] = [];
  const m = maintain(tb, id, wsEndpoint(tb, 'oauth2', lbl), rec, {
    refreshBufferMs: 3000,
    retry: FAST,
    metrics,
    reauthMessage: (token) => {
      reauths.push(token);
      return JSON.stringify({ type: 'reauth', headers: { Authorization: `Bearer ${token.access_token}` } });
    },
  });
  await eventually('welcome', 20_000, () => rec.welcomes() === 1);
  await eventually(
    'an in-band re-authentication',
    20_000,
    async () => (await wsStats(tb, lbl)).reauth_ok >= 1,
  );
  assert.ok(Date.now() < expires, 're-authenticated only after the token expired');
  await sleepMs(expires + 1000 - Date.now());
  await rec.echo('after the first token expired');
  const s = await wsStats(tb, lbl);
  assert.equal(s.opened, 1);
  assert.equal(s.open, 1);
  assert.equal(s.unauthorized, 0);
  assert.equal(s.reauth_refused, 0);
  assert.ok(s.credentials >= 2);
  assert.equal(rec.disconnects.length, 0);
  assert.ok(rec.messages.includes('{"type":"reauth_ok"}'));
  assert.ok(reauths.length >= 1 && count('refresh:ok') >= 1);
  m.abort();
  await m.wait();
});

// Without an in-band re-auth, the connection is closed cleanly and opened again with the refreshed
// token before the old one expires: the server never has to refuse it.
test('refresh ahead of expiry, by reconnecting: closed 1000 and reopened before expiry', async () => {
  const { id, expires } = await connectShortLived(12);
  const lbl = label('reconnect');
  const rec = new Recorder();
  const { metrics, count } = countingMetrics();
  const m = maintain(tb, id, wsEndpoint(tb, 'oauth2', lbl), rec, {
    refreshBufferMs: 3000,
    retry: FAST,
    metrics,
  });
  await eventually('a second connection', 20_000, () => rec.welcomes() === 2);
  assert.ok(Date.now() < expires, 'reconnected only after the token expired');
  await sleepMs(expires + 1000 - Date.now());
  await rec.echo('after the first token expired');
  const s = await wsStats(tb, lbl);
  assert.equal(s.opened, 2);
  assert.equal(s.closed['1000'], 1);
  assert.equal(s.unauthorized, 0);
  assert.equal(s.credentials, 2);
  assert.ok(rec.lastDisconnect() instanceof CredentialRefreshedError, String(rec.lastDisconnect()));
  assert.equal(count('disconnect:refresh'), 1);
  m.abort();
  await m.wait();
});

// reconnectOnRefresh: false keeps the connection (servers that check only at the handshake): the
// testbed's server checks expiry on open connections too, so it ends this one with 3000, and the
// bridge reconnects at once with the credential it already refreshed.
test('reconnectOnRefresh false: the connection is kept after a refresh', async () => {
  const { id } = await connectShortLived(12);
  const lbl = label('keep');
  const rec = new Recorder();
  const { metrics, count } = countingMetrics();
  const m = maintain(tb, id, wsEndpoint(tb, 'oauth2', lbl), rec, {
    refreshBufferMs: 3000,
    retry: FAST,
    metrics,
    reconnectOnRefresh: false,
  });
  await eventually('welcome', 20_000, () => rec.welcomes() === 1);
  await eventually('a refresh', 20_000, () => count('refresh:ok') >= 1);
  await sleepMs(300);
  assert.equal(rec.disconnects.length, 0, 'the connection was closed after the refresh');
  await eventually('the server ends the expired session', 20_000, () => rec.welcomes() === 2);
  assert.ok(rec.disconnects[0] instanceof CredentialRefusedError);
  assert.equal((await wsStats(tb, lbl)).credentials, 2);
  m.abort();
  await m.wait();
});
