import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import type { GrpcServer } from '../src/grpc/server.ts';
import { fromStruct, NexusClient, ORIGINAL, startGrpc } from './grpc-client.ts';
import { json } from './harness.ts';
import { RETURN, Scenario } from './oauth-scenario.ts';

/**
 * Issue #17: a client generated from the original Go gateway's `nexus.v1` service keeps working
 * against Nexus. The client here is built from `fixtures/original-nexus.proto` (the v1 contract's
 * table, not `proto/`) and runs the original agent's loop against a real OpenID provider:
 * RequestConnection, the user's consent, CheckConnection until `active`, GetToken, RefreshConnection.
 * Before the fix, the poll read the connection id as the status and never ended, and GetToken failed
 * to parse ("cannot parse invalid wire-format data" in Go).
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A protobuf length-delimited field (wire type 2) of at most 127 bytes: tag, length, bytes. */
const lengthDelimited = (field: number, text: string) => {
  const bytes = Buffer.from(text, 'utf8');
  assert.ok(bytes.length < 128);
  return Buffer.concat([Buffer.from([(field << 3) | 2, bytes.length]), bytes]);
};

describe('an original nexus.v1 gRPC client (issue #17)', () => {
  const s = new Scenario();
  let grpcServer: GrpcServer;
  let client: NexusClient;
  let address: string;
  let admin: Record<string, string>;
  let providerIds: Record<string, string>;

  before(async () => {
    await s.start();
    admin = { 'x-api-key': s.broker.adminKey };
    const started = await startGrpc(s.broker);
    grpcServer = started.server;
    address = started.address;
    client = new NexusClient(address, ORIGINAL);
    const providers = json<{ id: string; name: string }[]>(
      await s.call({ method: 'GET', url: '/providers' }, 200),
    );
    providerIds = Object.fromEntries(providers.map((p) => [p.name, p.id]));
  });
  after(async () => {
    client?.close();
    await grpcServer?.close(1_000);
    await s.close();
  });

  it('connects, polls CheckConnection until active, then reads and refreshes the token', async () => {
    // No scopes (the provider's defaults) and the original's `action`, by provider_name (field 3).
    const started = await client.call<Record<string, unknown>>(
      'RequestConnection',
      { user_id: 'original-user', provider_name: 'idp-basic', return_url: RETURN, action: 'connect' },
      admin,
    );
    assert.deepEqual(Object.keys(started).sort(), [
      'auth_url',
      'connection_id',
      'provider_id',
      'scopes',
      'state',
    ]);
    const id = started.connection_id as string;
    assert.match(id, UUID);
    assert.equal(started.provider_id, providerIds['idp-basic']);
    assert.deepEqual(started.scopes, ['api:read'], "the provider's default scopes");
    const authUrl = new URL(started.auth_url as string);
    assert.equal(authUrl.origin + authUrl.pathname, s.idp.endpoints.authorization);
    assert.equal(authUrl.searchParams.get('state'), started.state);
    assert.equal(authUrl.searchParams.get('scope'), 'api:read');

    // The original agent's loop: poll while the user consents in their browser.
    assert.deepEqual(await client.call('CheckConnection', { connection_id: id }, admin), {
      status: 'pending',
    });
    const browser = (async () => {
      const callback = await s.idp.consent(authUrl.toString());
      const res = await s.call({ method: 'GET', url: callback.pathname + callback.search, key: null }, 302);
      return new URL(res.headers.location as string).searchParams;
    })();
    let polls = 0;
    for (;;) {
      const checked = await client.call<{ status: string }>('CheckConnection', { connection_id: id }, admin);
      if (checked.status === 'active') break;
      assert.equal(checked.status, 'pending', `CheckConnection answered ${JSON.stringify(checked)}`);
      assert.ok(++polls < 400, 'the connection never became active');
      await sleep(25);
    }
    const back = await browser;
    assert.equal(back.get('status'), 'success');
    assert.equal(back.get('connection_id'), id);
    assert.deepEqual(await client.call('CheckConnection', { connection_id: id }, admin), {
      status: 'active',
    });

    // GetTokenResponse {token = 1}: the REST answer, field for field, as a Struct.
    const got = await client.call<{ token: { fields: Record<string, Record<string, unknown>> } }>(
      'GetToken',
      { connection_id: id },
      admin,
    );
    assert.deepEqual(Object.keys(got), ['token']);
    const token = fromStruct(got.token);
    const rest = json(await s.call({ method: 'GET', url: `/v1/token/${id}` }, 200));
    assert.deepEqual(token, rest);
    assert.equal(token.connection_id, id);
    assert.equal(token.provider_id, providerIds['idp-basic']);
    assert.equal(token.provider_name, 'idp-basic');
    assert.deepEqual(token.strategy, { type: 'oauth2', config: {} });
    assert.equal(token.access_token, (await s.stored(id)).access_token);
    assert.match(String(token.token_type), /^bearer$/i);
    assert.ok(!('refresh_token' in token) && !JSON.stringify(token).includes('refresh'), 'no refresh token');

    // RefreshConnectionResponse {token = 1}: a new access token, the one now stored.
    s.clock += 3_000;
    const refreshed = await client.call<{ token: { fields: Record<string, Record<string, unknown>> } }>(
      'RefreshConnection',
      { connection_id: id },
      admin,
    );
    assert.deepEqual(Object.keys(refreshed), ['token']);
    const fresh = fromStruct(refreshed.token);
    assert.notEqual(fresh.access_token, token.access_token);
    assert.equal(fresh.access_token, (await s.stored(id)).access_token);
    assert.deepEqual(Object.keys(fresh).sort(), Object.keys(token).sort());
    assert.ok(!JSON.stringify(fresh).includes((await s.stored(id)).refresh_token!), 'no refresh token');
  });

  it('answers CheckConnection with the status as field 1, byte for byte', async () => {
    const id = await s.connect('idp-basic', 'original-bytes');
    // No .proto at all: the request and the answer as bytes on the wire.
    const bytes = await new Promise<Buffer>((resolve, reject) => {
      const metadata = new grpc.Metadata();
      metadata.set('x-api-key', s.broker.adminKey);
      client.raw.makeUnaryRequest(
        '/nexus.v1.NexusService/CheckConnection',
        (request: Buffer) => request,
        (answer: Buffer) => answer,
        lengthDelimited(1, id),
        metadata,
        (error, answer) => (error ? reject(error) : resolve(answer!)),
      );
    });
    // status (1) first, then Nexus's connection_id on its own new number (3); nothing at 2.
    assert.deepEqual(bytes, Buffer.concat([lengthDelimited(1, 'active'), lengthDelimited(3, id)]));
  });

  it('takes provider_id (field 2) before provider_name, and explicit scopes as given', async () => {
    const byId = await client.call<Record<string, unknown>>(
      'RequestConnection',
      { user_id: 'original-user', provider_id: providerIds['idp-basic'], return_url: RETURN },
      admin,
    );
    assert.equal(byId.provider_id, providerIds['idp-basic']);
    // The original gateway used provider_id whenever it was set.
    const both = await client.call<Record<string, unknown>>(
      'RequestConnection',
      {
        user_id: 'original-user',
        provider_id: providerIds['idp-basic'],
        provider_name: 'idp-discovered',
        scopes: ['api:write', 'api:read'],
        return_url: RETURN,
      },
      admin,
    );
    assert.equal(both.provider_id, providerIds['idp-basic']);
    assert.deepEqual(both.scopes, ['api:write', 'api:read']);
    assert.equal(new URL(both.auth_url as string).searchParams.get('scope'), 'api:write api:read');
    // An empty provider_id, as some encoders send it, is an absent one.
    const emptyId = await client.call<Record<string, unknown>>(
      'RequestConnection',
      { user_id: 'original-user', provider_id: '', provider_name: 'idp-discovered', return_url: RETURN },
      admin,
    );
    assert.equal(emptyId.provider_id, providerIds['idp-discovered']);
    // Neither: refused.
    const neither = await client.fail(
      'RequestConnection',
      { user_id: 'original-user', return_url: RETURN, action: 'connect' },
      admin,
    );
    assert.equal(neither.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(neither.trailers['nexus-error-code'], 'invalid_request');
  });
});
