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
import { SignatureV4 } from '@smithy/signature-v4';
import { applyStrategy } from '../../apps/broker/src/modules/strategies/apply.ts';
import type { Strategy } from '../../apps/broker/src/modules/strategies/strategy.ts';
import { Sha256 } from './upstream.ts';

interface Info {
  broker_url: string;
  admin_key: string;
  upstream_url: string;
  control_url: string;
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
