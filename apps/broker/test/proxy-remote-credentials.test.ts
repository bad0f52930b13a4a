/**
 * The standalone proxy's credential source (remote-credentials.ts) against a broker stand-in on
 * loopback that answers the two routes it uses and reads a connection's status when a check
 * arrives. The caller's right and the connection's status are asked for every call (security
 * review of the proxy, defect 3); calls of one moment share a check, never one sent before they came.
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { NexusError } from '../src/errors/nexus-error.ts';
import { createRemoteCredentials } from '../src/modules/proxy/remote-credentials.ts';

const CONNECTION = '00000000-0000-4000-8000-000000000001';

describe('remote credentials of nexus proxy', () => {
  let status = 'active';
  /** Check answers wait for this when set (each answer holds the status read on arrival). */
  let gate: Promise<void> | undefined;
  const checks: string[] = [];
  let tokenReads = 0;
  const send = (res: ServerResponse, body: unknown) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const broker = createServer((req, res) => {
    if (req.url?.startsWith('/v1/check-connection/')) {
      const read = status;
      checks.push(read);
      void (gate ?? Promise.resolve()).then(() => send(res, { connection_id: CONNECTION, status: read }));
      return;
    }
    if (req.url?.startsWith('/v1/token/')) {
      tokenReads += 1;
      send(res, {
        connection_id: CONNECTION,
        provider_name: 'svc',
        strategy: { type: 'header', config: { header_name: 'X-Key' } },
        credentials: { api_key: 'upstream-key' },
      });
      return;
    }
    res.writeHead(404).end('{}');
  });
  let source: ReturnType<typeof createRemoteCredentials>;
  const caller = { header: { name: 'x-api-key' as const, value: 'caller-key' } };

  before(async () => {
    await new Promise<void>((done) => broker.listen(0, '127.0.0.1', done));
    source = createRemoteCredentials({
      brokerUrl: new URL(`http://127.0.0.1:${(broker.address() as AddressInfo).port}`),
      own: { apiKey: 'proxy-key' },
      cacheTtlMs: 60_000,
      timeoutMs: 5_000,
    });
  });
  after(() => broker.close());

  const refused = (error: unknown) => {
    assert.ok(error instanceof NexusError);
    assert.equal(error.code, 'connection_not_active');
    assert.equal(error.status, 409);
    return true;
  };

  it('asks the connection status for every call, cached token or not: a revocation takes effect at once', async () => {
    status = 'active';
    checks.length = 0;
    for (let i = 0; i < 3; i++) await source.token(caller, { connectionId: CONNECTION });
    assert.deepEqual(checks, ['active', 'active', 'active'], 'one check per call');
    assert.equal(tokenReads, 1, 'the token itself is cached');
    status = 'revoked';
    await assert.rejects(source.token(caller, { connectionId: CONNECTION }), refused);
  });

  it('calls made while a check is on its way wait for the next one, which sees a revocation made before them', async () => {
    status = 'active';
    checks.length = 0;
    let open!: () => void;
    gate = new Promise<void>((done) => (open = done));
    try {
      const first = source.token(caller, { connectionId: CONNECTION });
      while (checks.length === 0) await new Promise((done) => setTimeout(done, 5));
      // Revoked after the first check read the status, before these calls were made.
      status = 'revoked';
      const later = Promise.allSettled(
        Array.from({ length: 5 }, () => source.token(caller, { connectionId: CONNECTION })),
      );
      open();
      assert.equal((await first).connection_id, CONNECTION, 'the call made before the revocation');
      for (const call of await later) {
        assert.equal(call.status, 'rejected', 'a call made after the revocation');
        refused((call as PromiseRejectedResult).reason);
      }
      assert.deepEqual(checks, ['active', 'revoked'], 'the five later calls shared one check');
    } finally {
      gate = undefined;
    }
  });
});
