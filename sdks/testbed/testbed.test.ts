/**
 * The testbed checks itself: its upstream must accept exactly the credentials each strategy should
 * apply and refuse anything else, or every SDK test built on it would prove nothing. The credentials
 * come from the broker's token route and are applied here independently of any SDK (the broker's own
 * strategy code for five types, the AWS signer for SigV4).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { service as healthService } from 'grpc-health-check';
import { WebSocket } from 'ws';
import { applyStrategy } from '../../apps/broker/src/modules/strategies/apply.ts';
import type { Strategy } from '../../apps/broker/src/modules/strategies/strategy.ts';
import { Sha256 } from './upstream.ts';

interface Info {
  broker_url: string;
  admin_key: string;
  upstream_url: string;
  control_url: string;
  ws_url: string;
  grpc_target: string;
  connections: Record<string, string>;
}
interface Token {
  strategy: Strategy;
  credentials: Record<string, string>;
}

describe('SDK testbed', { timeout: 120_000 }, () => {
  let child: ChildProcess;
  let info: Info;

  before(async () => {
    child = spawn(process.execPath, [join(import.meta.dirname, 'testbed.ts')], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let errors = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      errors += chunk.toString();
    });
    info = await new Promise<Info>((done, fail) => {
      let out = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const line = out.split('\n')[0];
        if (out.includes('\n') && line !== undefined) done(JSON.parse(line) as Info);
      });
      child.once('exit', (code) => fail(new Error(`testbed exited with ${code}:\n${errors}`)));
    });
  });
  after(() => {
    child.stdin?.end();
  });

  const control = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${info.control_url}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    assert.equal(res.status, 200, `${path}: ${await res.clone().text()}`);
    return (await res.json()) as T;
  };
  const broker = (method: string, path: string) =>
    fetch(`${info.broker_url}${path}`, { method, headers: { 'x-api-key': info.admin_key } });
  const token = async (id: string) => (await (await broker('GET', `/v1/token/${id}`)).json()) as Token;

  /** Sends a POST with `body` to the upstream, credentials applied the way the strategy says. */
  async function send(kind: string, credentials: Token, body = '{"hello":"world"}'): Promise<Response> {
    const url = new URL(`${info.upstream_url}/${kind}/items?x=1`);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (credentials.strategy.type === 'aws_sigv4') {
      const c = credentials.credentials;
      const signer = new SignatureV4({
        credentials: {
          accessKeyId: c.access_key!,
          secretAccessKey: c.secret_key!,
          sessionToken: c.session_token,
        },
        region: credentials.strategy.config.region!,
        service: credentials.strategy.config.service!,
        sha256: Sha256,
      });
      const signed = await signer.sign({
        method: 'POST',
        protocol: 'http:',
        hostname: url.hostname,
        port: Number(url.port),
        path: url.pathname,
        query: { x: '1' },
        headers: { ...headers, host: url.host },
        body,
      });
      return fetch(url, { method: 'POST', headers: signed.headers, body });
    }
    const applied = applyStrategy(credentials.strategy, credentials.credentials, { url, headers, body });
    return fetch(applied.url, { method: 'POST', headers: applied.headers, body });
  }

  it('accepts the credential each strategy applies, and refuses a wrong one', async () => {
    for (const [kind, id] of Object.entries(info.connections)) {
      const right = await token(id);
      assert.equal(right.strategy.type, kind);
      const ok = await send(kind, right);
      assert.equal(ok.status, 200, `${kind}: ${await ok.clone().text()}`);
      assert.equal(((await ok.json()) as { strategy: string }).strategy, kind);

      const wrong = {
        ...right,
        credentials: Object.fromEntries(Object.entries(right.credentials).map(([k, v]) => [k, `${v}x`])),
      };
      const refused = await send(kind, wrong);
      assert.equal(refused.status, 401, `${kind} accepted a wrong credential`);
    }
  });

  it('refuses a body changed after it was signed (HMAC and SigV4)', async () => {
    for (const kind of ['hmac_payload', 'aws_sigv4']) {
      const right = await token(info.connections[kind]!);
      const url = new URL(`${info.upstream_url}/${kind}/items`);
      const applied =
        kind === 'hmac_payload'
          ? applyStrategy(right.strategy, right.credentials, { url, headers: {}, body: 'signed body' })
              .headers
          : {};
      const res = await fetch(url, { method: 'POST', headers: applied, body: 'another body' });
      assert.equal(res.status, 401, kind);
    }
  });

  /** The handshake headers and URL of a WebSocket to `{ws_url}/{kind}/{label}`, the credential applied. */
  function handshake(kind: string, credentials: Token, label: string) {
    const url = new URL(`${info.ws_url}/${kind}/${label}`);
    const applied = applyStrategy(credentials.strategy, credentials.credentials, {
      url,
      headers: {},
      body: '',
    });
    return { url: applied.url, headers: applied.headers as Record<string, string> };
  }

  /** Opens a WebSocket: resolves to the socket and its welcome message, or rejects with the refusal status. */
  function openWs(
    kind: string,
    credentials: Token,
    label: string,
  ): Promise<{ ws: WebSocket; welcome: string }> {
    const { url, headers } = handshake(kind, credentials, label);
    return new Promise((done, fail) => {
      const ws = new WebSocket(url, { headers });
      ws.once('message', (data) => done({ ws, welcome: String(data) }));
      ws.once('unexpected-response', (_req, res) => fail(new Error(String(res.statusCode))));
      ws.once('error', fail);
    });
  }

  const closed = (ws: WebSocket) =>
    new Promise<number>((done) => ws.once('close', (code: number) => done(code)));

  const wrongOf = (right: Token): Token => ({
    ...right,
    credentials: Object.fromEntries(Object.entries(right.credentials).map(([k, v]) => [k, `${v}x`])),
  });

  it('the WebSocket server checks the credential at the handshake and echoes', async () => {
    for (const kind of ['oauth2', 'header', 'query_param', 'basic_auth']) {
      const right = await token(info.connections[kind]!);
      const { ws, welcome } = await openWs(kind, right, `self-${kind}`);
      assert.equal((JSON.parse(welcome) as { type: string }).type, 'welcome');
      const echo = new Promise<string>((done) => ws.once('message', (data) => done(String(data))));
      ws.send('ping me back');
      assert.equal(await echo, 'ping me back');
      ws.close();
      await assert.rejects(
        openWs(kind, wrongOf(right), `self-${kind}`),
        /401/,
        `${kind} accepted a wrong one`,
      );
    }
  });

  it('the gRPC server checks every call and ends a stream whose token expired', async () => {
    const Health = grpc.makeGenericClientConstructor(healthService, 'Health');
    const client = new Health(
      info.grpc_target,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & {
      check(
        req: unknown,
        md: grpc.Metadata,
        cb: (e: grpc.ServiceError | null, r?: { status: string }) => void,
      ): void;
      watch(req: unknown, md: grpc.Metadata): grpc.ClientReadableStream<{ status: string }>;
    };
    const check = (service: string, md: grpc.Metadata) =>
      new Promise<string>((done, fail) =>
        client.check({ service }, md, (e, r) => (e === null ? done(r!.status) : fail(e))),
      );
    const metadataOf = (kind: string, credentials: Token) => {
      const applied = applyStrategy(credentials.strategy, credentials.credentials, {
        url: new URL('http://grpc.invalid/'),
        headers: {},
        body: '',
      });
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(applied.headers)) md.set(k.toLowerCase(), v);
      return { kind, md };
    };
    for (const kind of ['oauth2', 'header', 'basic_auth']) {
      const right = await token(info.connections[kind]!);
      assert.equal(await check(`${kind}/self`, metadataOf(kind, right).md), 'SERVING');
      await assert.rejects(check(`${kind}/self`, metadataOf(kind, wrongOf(right)).md), {
        code: grpc.status.UNAUTHENTICATED,
      });
    }
    const fresh = await control<{ connection_id: string }>('POST', '/connect', { strategy: 'oauth2' });
    const stream = client.watch(
      { service: 'oauth2/self-expire' },
      metadataOf('oauth2', await token(fresh.connection_id)).md,
    );
    await new Promise((done) => stream.once('data', done));
    const ended = new Promise<number>((done) => stream.once('error', (e: grpc.ServiceError) => done(e.code)));
    assert.deepEqual(await control('POST', '/idp/expire', { connection_id: fresh.connection_id }), {
      ok: true,
      ended: 1,
    });
    assert.equal(await ended, grpc.status.UNAUTHENTICATED);
    client.close();
  });

  it('control: expired and short-lived tokens, revoked grants and drops end WebSocket sessions', async () => {
    // A forced expiry: the open session is closed 3000, and the token is refused from then on.
    const first = await control<{ connection_id: string }>('POST', '/connect', { strategy: 'oauth2' });
    const expired = await token(first.connection_id);
    const a = await openWs('oauth2', expired, 'self-control');
    const aClosed = closed(a.ws);
    await control('POST', '/idp/expire', { connection_id: first.connection_id });
    assert.equal(await aClosed, 3000);
    await assert.rejects(openWs('oauth2', expired, 'self-control'), /401/);
    assert.equal((await send('oauth2', expired)).status, 401, 'the HTTP upstream refuses it too');

    // A short lifetime: the provider says expires_in 5 and the session is closed when it passes.
    // (Long enough for a loaded machine to open the session before then.)
    const second = await control<{ connection_id: string }>('POST', '/connect', {
      strategy: 'oauth2',
      token_ttl: 5,
    });
    const short = (await token(second.connection_id)) as Token & { expires_at: string };
    assert.ok(Date.parse(short.expires_at) - Date.now() <= 5_500, `expires_at ${short.expires_at}`);
    const b = await openWs('oauth2', short, 'self-control');
    assert.equal(await closed(b.ws), 3000);

    // A revoked grant, checked again at once.
    const third = await control<{ connection_id: string }>('POST', '/connect', { strategy: 'oauth2' });
    const c = await openWs('oauth2', await token(third.connection_id), 'self-control');
    const cClosed = closed(c.ws);
    await control('POST', '/idp/revoke', { connection_id: third.connection_id });
    assert.equal(await cClosed, 3000);

    // Drops: with a close code, or the TCP connection destroyed (1006).
    const header = await token(info.connections.header!);
    const d = await openWs('header', header, 'self-drop');
    const dClosed = closed(d.ws);
    assert.deepEqual(await control('POST', '/ws/drop', { label: 'self-drop', code: 1008 }), { dropped: 1 });
    assert.equal(await dClosed, 1008);
    const e = await openWs('header', header, 'self-drop');
    const eClosed = closed(e.ws);
    await control('POST', '/ws/drop', { label: 'self-drop' });
    assert.equal(await eClosed, 1006);
    await control('POST', '/ws/refuse-next', { label: 'self-drop', count: 1, status: 503 });
    await assert.rejects(openWs('header', header, 'self-drop'), /503/);

    const stats = await control<{
      ws: Record<string, { opened: number; unauthorized: number; closed: Record<string, number> }>;
    }>('GET', '/stats');
    assert.equal(stats.ws['self-control']?.unauthorized, 3);
    assert.deepEqual(stats.ws['self-drop']?.closed, { '1006': 1, '1008': 1 });
  });

  it('control: reject-next, new connections, revoked grants, broker stop and start, counters', async () => {
    const header = await token(info.connections.header!);
    await control('POST', '/upstream/reject-next', { strategy: 'header', count: 1 });
    assert.equal((await send('header', header)).status, 401, 'rejected on purpose');
    assert.equal((await send('header', header)).status, 200, 'only once');

    const fresh = await control<{ connection_id: string }>('POST', '/connect', { strategy: 'oauth2' });
    const before = await control<{ idp: { refresh_token: number } }>('GET', '/stats');
    assert.equal((await broker('POST', `/v1/refresh/${fresh.connection_id}`)).status, 200);
    const afterRefresh = await control<{ idp: { refresh_token: number } }>('GET', '/stats');
    assert.equal(afterRefresh.idp.refresh_token, before.idp.refresh_token + 1);

    // Another connection: a forced refresh within 2 s of the last one is answered by that one.
    const doomed = await control<{ connection_id: string }>('POST', '/connect', { strategy: 'oauth2' });
    await control('POST', '/idp/revoke', { connection_id: doomed.connection_id });
    const revoked = await broker('POST', `/v1/refresh/${doomed.connection_id}`);
    assert.equal(revoked.status, 409);
    assert.equal(((await revoked.json()) as { error: string }).error, 'attention_required');

    await control('POST', '/broker/stop');
    await assert.rejects(broker('GET', '/health'));
    await control('POST', '/broker/start');
    assert.equal(
      (await broker('GET', `/v1/token/${info.connections.basic_auth}`)).status,
      200,
      'same database',
    );
  });
});
