import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as oauth from 'oauth4webapi';
import { errorFrom } from '../errors/nexus-error.ts';
import { connectionErrors } from '../modules/connections/connections.errors.ts';
import { errorForLog } from './log-error.ts';

describe('errorForLog', () => {
  it("keeps a provider's answer out, and a NexusError's detail and causes in", async () => {
    // What oauth4webapi throws for an error answer: the whole body is its `cause`.
    const answer = Response.json(
      { error: 'ratelimited', ok: false, access_token: 'at-secret-1', refresh_token: 'rt-secret-2' },
      { status: 400 },
    );
    const thrown = await oauth
      .processRefreshTokenResponse(
        { issuer: 'https://idp.example', token_endpoint: 'https://idp.example/token' },
        { client_id: 'c' },
        answer,
      )
      .catch((error: unknown) => error);
    assert.ok(thrown instanceof oauth.ResponseBodyError, String(thrown));
    const wrapped = errorFrom(connectionErrors, 'provider_unavailable', {
      detail: 'refresh of c-1: 400 ratelimited',
      cause: thrown,
    });
    const logged = errorForLog(wrapped);
    const text = JSON.stringify(logged);
    assert.ok(!text.includes('at-secret-1') && !text.includes('rt-secret-2'), text);
    assert.equal(logged.code, 'provider_unavailable');
    assert.equal(logged.detail, 'refresh of c-1: 400 ratelimited');
    assert.equal(logged.cause?.type, 'ResponseBodyError');
    assert.equal(logged.cause?.error, 'ratelimited');
    assert.equal(logged.cause?.status, 400);
  });

  it('logs a thrown non-Error without its properties', () => {
    assert.deepEqual(errorForLog({ type: 'x', message: 'm', token: 'secret' }), { type: 'x', message: 'm' });
    assert.deepEqual(errorForLog('secret text'), { type: 'string', message: '[not an Error]' });
  });
});
