/**
 * "No admin path to a stored secret" for providers of captured credentials: the capture probe
 * (`params.validation`, else `user_info_endpoint`) receives every API key a user types, so an
 * admin key may not point it elsewhere while connections hold keys. Runs on SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { capture, startCapture } from './capture-helpers.ts';
import { json, startBroker, type TestBroker } from './harness.ts';

describe('the capture probe is a guarded destination', () => {
  let broker: TestBroker;
  let id: string;
  const servers: ReturnType<typeof createServer>[] = [];
  const trapHeard: IncomingMessage['headers'][] = [];
  let api = '';
  let trap = '';
  let aliceConnection = '';

  const listen = async (onRequest: (req: IncomingMessage) => void) => {
    const server = createServer((req, res) => {
      onRequest(req);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
    servers.push(server);
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };

  before(async () => {
    api = await listen(() => {});
    trap = await listen((req) => trapHeard.push(req.headers));
    broker = await startBroker({ env: { NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32' } });
    const created = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: {
          name: 'acme',
          auth_type: 'header',
          api_base_url: api,
          params: {
            auth_strategy: { type: 'header', config: { header_name: 'X-Api-Key' } },
            validation: { url: '/me' },
          },
        },
      },
    });
    assert.equal(created.statusCode, 201, created.body);
    id = json<{ id: string }>(created).id;
    const flow = await startCapture(broker, 'acme', 'alice');
    const done = await capture(broker, flow.state, { api_key: 'alice-key-0123456789' });
    assert.equal(done.statusCode, 200, done.body);
    aliceConnection = flow.connection_id;
  });
  after(async () => {
    await broker.close();
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
  });

  it('refuses to move the probe while a connection holds a key, and the next capture goes where it went', async () => {
    const current = json<{ params: Record<string, unknown> }>(
      await broker.request({ method: 'GET', url: `/providers/${id}` }),
    );
    const { validation: _, ...withoutValidation } = current.params;
    const changes: [Record<string, unknown>, string][] = [
      [{ params: { ...current.params, validation: { url: `${trap}/collect` } } }, 'params.validation'],
      [{ params: withoutValidation, user_info_endpoint: `${trap}/userinfo` }, 'user_info_endpoint'],
    ];
    for (const [profile, field] of changes) {
      const res = await broker.request({ method: 'PATCH', url: `/providers/${id}`, payload: { profile } });
      assert.equal(res.statusCode, 409, res.body);
      const body = json<{ error: string; details: { fields: string[] } }>(res);
      assert.equal(body.error, 'provider_destination_locked');
      assert.ok(body.details.fields.includes(field), JSON.stringify(body.details));
    }
    const flow = await startCapture(broker, 'acme', 'bob');
    const done = await capture(broker, flow.state, { api_key: 'bob-key-0123456789' });
    assert.equal(done.statusCode, 200, done.body);
    assert.deepEqual(trapHeard, [], 'no key reached the trap');
  });

  it('a proxy route remembered for a deleted provider carries no other provider credentials after a rename', async () => {
    // The proxy remembers a route (name, base URL) for a few seconds. A throwaway provider whose
    // base URL is the trap primes it; the provider goes, and the victim takes its name.
    const throwaway = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: { profile: { name: 'n', auth_type: 'header', api_base_url: trap } },
    });
    assert.equal(throwaway.statusCode, 201, throwaway.body);
    await broker.request({ method: 'GET', url: '/proxy/n/x', headers: { 'x-nexus-user-id': 'nobody' } });
    const deleted = await broker.request({
      method: 'DELETE',
      url: `/providers/${json<{ id: string }>(throwaway).id}`,
    });
    assert.equal(deleted.statusCode, 200, deleted.body);
    const renamed = await broker.request({
      method: 'PATCH',
      url: `/providers/${id}`,
      payload: { profile: { name: 'n' } },
    });
    assert.equal(renamed.statusCode, 200, renamed.body);
    try {
      const res = await broker.request({
        method: 'GET',
        url: '/proxy/n/steal',
        headers: { 'x-nexus-connection-id': aliceConnection },
      });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(json<{ error: string }>(res).error, 'route_mismatch');
      assert.deepEqual(trapHeard, [], 'the stored key never reached the trap');
    } finally {
      await broker.request({
        method: 'PATCH',
        url: `/providers/${id}`,
        payload: { profile: { name: 'acme' } },
      });
    }
  });
});
