/**
 * The gRPC listener takes the client's address as REST does: the socket peer, or, from a peer in
 * TRUSTED_PROXIES, the address `x-forwarded-for` gives. ALLOWED_CIDRS, the rate limits and the
 * audit see the same client on both (2026-12-08: gRPC read only the socket peer, so behind a proxy
 * every client had the proxy's address).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { NexusClient, startGrpc } from './grpc-client.ts';
import { json, startBroker } from './harness.ts';

const UNKNOWN = '00000000-0000-4000-8000-000000000000';

async function withGrpc(
  env: Record<string, string>,
  run: (call: (forwardedFor?: string) => Promise<grpc.status>) => Promise<void>,
) {
  const broker = await startBroker({ env });
  const { server, address } = await startGrpc(broker);
  const client = new NexusClient(address);
  try {
    await run(async (forwardedFor) => {
      const headers: Record<string, string> = { 'x-api-key': broker.adminKey };
      if (forwardedFor !== undefined) headers['x-forwarded-for'] = forwardedFor;
      return (await client.fail('GetToken', { connection_id: UNKNOWN }, headers)).code;
    });
  } finally {
    client.close();
    await server.close();
    await broker.close();
  }
}

describe('gRPC client address', () => {
  it('believes x-forwarded-for only from a trusted proxy, for ALLOWED_CIDRS as on REST', async () => {
    await withGrpc({ ALLOWED_CIDRS: '10.0.0.0/8', TRUSTED_PROXIES: '127.0.0.1/32' }, async (call) => {
      // Inside the range: authenticated, and told the connection is unknown.
      assert.equal(await call('10.1.2.3'), grpc.status.NOT_FOUND);
      // Outside it, or with no forwarded address (the proxy itself, 127.0.0.1): refused.
      assert.equal(await call('192.0.2.7'), grpc.status.PERMISSION_DENIED);
      assert.equal(await call(), grpc.status.PERMISSION_DENIED);
      // A client cannot add a hop in front of the proxy's: the address the proxy saw counts.
      assert.equal(await call('10.9.9.9, 192.0.2.7'), grpc.status.PERMISSION_DENIED);
    });
  });

  it('ignores x-forwarded-for without TRUSTED_PROXIES: it cannot be used to get in', async () => {
    await withGrpc({ ALLOWED_CIDRS: '10.0.0.0/8' }, async (call) => {
      assert.equal(await call('10.1.2.3'), grpc.status.PERMISSION_DENIED);
    });
  });

  it('audits the forwarded address', async () => {
    const broker = await startBroker({ env: { TRUSTED_PROXIES: '127.0.0.1/32' } });
    const { server, address } = await startGrpc(broker);
    const client = new NexusClient(address);
    try {
      await broker.request({
        method: 'POST',
        url: '/providers',
        payload: { profile: { name: 'crm', auth_type: 'api_key' } },
      });
      await client.call(
        'RequestConnection',
        { user_id: 'alice', provider_name: 'crm', return_url: 'http://localhost:3000/done' },
        { 'x-api-key': broker.adminKey, 'x-forwarded-for': '198.51.100.23' },
      );
      const events = json<{ events: Array<{ event_type: string; ip: string | null }> }>(
        await broker.request({ method: 'GET', url: '/audit?event_type=connection.requested' }),
      ).events;
      assert.equal(events[0]?.ip, '198.51.100.23');
    } finally {
      client.close();
      await server.close();
      await broker.close();
    }
  });
});
