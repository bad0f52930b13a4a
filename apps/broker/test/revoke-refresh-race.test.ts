/**
 * A revocation racing a refresh, at a provider that revokes only the token presented (RFC 7009
 * allows it; oidc-provider itself revokes the whole grant, so the fixture answers revocation
 * itself here: `revokesPresentedTokenOnly`). The revocation presents the refresh token it read;
 * a refresh that rotated it meanwhile holds a new one, which must not stay live at the provider
 * after the user revoked the connection. Both orders: the refresh's answer arriving after the
 * connection was revoked (the broker cannot keep it), and arriving while the revocation is still at
 * the provider (the broker kept it). Runs on SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { Scenario } from './oauth-scenario.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('revocation racing a refresh, at a provider that revokes only the presented token', () => {
  const s = new Scenario();
  before(() => s.start({ idp: { revokesPresentedTokenOnly: true } }));
  after(() => s.close());
  afterEach(async () => {
    s.idp.setTokenResponseRewrite(undefined);
    await s.idp.setTokenEndpointFault('none');
  });

  /** Refresh tokens in the provider's answers, as the provider issued them. */
  function captureIssued(): string[] {
    const issued: string[] = [];
    s.idp.setTokenResponseRewrite((body) => {
      if (typeof body.refresh_token === 'string') issued.push(body.refresh_token);
      return body;
    });
    return issued;
  }
  const status = async (id: string) => (await s.broker.container.connectionsStore.find(id))?.status;
  /** Until a token request beyond the `seen` so far has reached the provider (counted on arrival). */
  async function untilTokenRequest(seen: number): Promise<void> {
    for (let tries = 0; s.idp.counts.token_requests <= seen; tries++) {
      assert.ok(tries < 1_000, 'the refresh reached the provider within 10 s');
      await sleep(10);
    }
  }

  it('the answer arrives after the connection was revoked: its new tokens are revoked at the provider', async () => {
    const id = await s.connect('idp-discovered', 'race-after');
    const issued = captureIssued();
    // The provider rotates at once; its answer reaches the broker 800 ms later.
    await s.idp.setTokenEndpointFault('slow_answer', 800);
    const seen = s.idp.counts.token_requests;
    const refresh = s.call({ method: 'POST', url: `/v1/refresh/${id}` });
    // Arrived, then a moment for the provider to rotate (it answers 800 ms later).
    await untilTokenRequest(seen);
    await sleep(200);
    await s.idp.setTokenEndpointFault('none');
    await s.call({ method: 'DELETE', url: `/v1/connections/${id}` }, 200);
    assert.equal(await status(id), 'revoked');
    const refreshed = await refresh;
    assert.notEqual(refreshed.statusCode, 200, 'the refresh could not be kept');
    assert.equal(issued.length, 1, 'the provider issued one new refresh token');
    assert.deepEqual(
      await s.refreshAtProvider(issued[0]!),
      { status: 400, error: 'invalid_grant' },
      'and it is revoked',
    );
    assert.equal(await status(id), 'revoked');
  });

  it('refuses the reason `superseded`, which would pass a revocation off as a replacement', async () => {
    // A refresh discarded after a replacement leaves its tokens alone (the newer connection may
    // share the grant at the provider); after a revocation by request it revokes them.
    const id = await s.connect('idp-discovered', 'reserved-reason');
    const refused = await s.call({ method: 'DELETE', url: `/v1/connections/${id}?reason=superseded` }, 400);
    assert.equal(JSON.parse(refused.body).error, 'invalid_request');
    assert.match(refused.body, /reserved/);
    assert.equal(await status(id), 'active', 'nothing was revoked');
    await s.call({ method: 'DELETE', url: `/v1/connections/${id}?reason=no%20longer%20needed` }, 200);
    assert.equal(await status(id), 'revoked');
    const row = await s.broker.container.connectionsStore.find(id);
    assert.equal(row?.last_error, 'no longer needed');
  });

  it('the answer arrives while the revocation is at the provider: the revocation follows the new tokens', async () => {
    const id = await s.connect('idp-discovered', 'race-during');
    const issued = captureIssued();
    // Every call reaches the provider 600 ms after it was sent: the refresh first, then the
    // revocation of the token it is about to rotate.
    await s.idp.setTokenEndpointFault('slow', 600);
    const seen = s.idp.counts.token_requests;
    const refresh = s.call({ method: 'POST', url: `/v1/refresh/${id}` });
    await untilTokenRequest(seen);
    const revoke = s.call({ method: 'DELETE', url: `/v1/connections/${id}` });
    assert.equal((await refresh).statusCode, 200, 'the refresh was kept');
    const revoked = await revoke;
    assert.equal(revoked.statusCode, 200, revoked.body);
    assert.equal(await status(id), 'revoked');
    await s.idp.setTokenEndpointFault('none');
    assert.equal(issued.length, 1);
    assert.deepEqual(
      await s.refreshAtProvider(issued[0]!),
      { status: 400, error: 'invalid_grant' },
      'the token the refresh brought is revoked too',
    );
  });
});
