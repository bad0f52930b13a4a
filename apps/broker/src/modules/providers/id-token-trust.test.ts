import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as oauth from 'oauth4webapi';
import { EgressError } from '../../egress/address-guard.ts';
import { errorFrom } from '../../errors/nexus-error.ts';
import type { DiscoveredMetadata } from './discovery.ts';
import { discoveryCandidates, idTokenTrust, openidWarning } from './id-token-trust.ts';
import { providerErrors } from './providers.errors.ts';
import type { StoredProfile } from './providers.schemas.ts';

/** How the discovery module fails (discovery.ts wraps every cause in `discovery_failed`). */
const failed = (cause?: unknown) => errorFrom(providerErrors, 'discovery_failed', { cause });
const answered = (status: number) =>
  failed(
    new oauth.OperationProcessingError('unexpected HTTP status code', {
      code: oauth.RESPONSE_IS_NOT_CONFORM,
      cause: new Response(null, { status }),
    }),
  );
const egress = (reason: ConstructorParameters<typeof EgressError>[0]) =>
  failed(new TypeError('fetch failed', { cause: new EgressError(reason, reason) }));

const doc = (issuer: string, jwks = true): DiscoveredMetadata => ({
  issuer,
  authorization_endpoint: `${issuer}/authorize`,
  token_endpoint: `${issuer}/token`,
  jwks_uri: jwks ? `${issuer}/jwks` : undefined,
  raw: { issuer },
});

const google: StoredProfile = {
  name: 'google',
  auth_type: 'oauth2',
  auth_header: 'client_secret_post',
  client_id: 'c',
  auth_url: 'https://accounts.example.com/o/oauth2/v2/auth',
  token_url: 'https://oauth2.example.net/token',
  enable_discovery: false,
  scopes: ['openid', 'email'],
  params: {},
};

/** A lookup answering from a table of origin → document or error, recording what was asked. */
function lookup(answers: Record<string, DiscoveredMetadata | Error>) {
  const asked: string[] = [];
  const fn = async (issuer: string) => {
    asked.push(issuer);
    const answer = answers[issuer];
    if (answer === undefined) throw answered(404);
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return Object.assign(fn, { asked });
}

describe('id_token trust for providers without enable_discovery (issue #17)', () => {
  it('looks at the origins of auth_url then token_url, or only at a configured issuer', () => {
    assert.deepEqual(discoveryCandidates(google), [
      'https://accounts.example.com',
      'https://oauth2.example.net',
    ]);
    assert.deepEqual(discoveryCandidates({ ...google, token_url: 'https://accounts.example.com/token' }), [
      'https://accounts.example.com',
    ]);
    assert.deepEqual(discoveryCandidates({ ...google, issuer: 'https://idp.example.com/realms/x' }), [
      'https://idp.example.com/realms/x',
    ]);
  });

  it('pins the issuer of the first document found, skipping places that have none', async () => {
    const at = lookup({ 'https://oauth2.example.net': doc('https://oauth2.example.net') });
    const trust = await idTokenTrust(google, at);
    assert.deepEqual(trust, {
      mode: 'verify',
      issuer: 'https://oauth2.example.net',
      source: 'hint',
      jwksUri: 'https://oauth2.example.net/jwks',
      foundAt: 'https://oauth2.example.net/.well-known/openid-configuration',
    });
    assert.deepEqual(at.asked, ['https://accounts.example.com', 'https://oauth2.example.net']);
  });

  it('uses issuer + params.jwks_uri without fetching anything', async () => {
    const at = lookup({});
    const trust = await idTokenTrust(
      { ...google, issuer: 'https://idp.example.com', params: { jwks_uri: 'https://idp.example.com/keys' } },
      at,
    );
    assert.deepEqual(trust, {
      mode: 'verify',
      issuer: 'https://idp.example.com',
      source: 'configured',
      jwksUri: 'https://idp.example.com/keys',
    });
    assert.deepEqual(at.asked, []);
  });

  it('discards when every place says there is no usable document', async () => {
    for (const absent of [
      answered(404),
      answered(403),
      failed(), // refused after reading (endpoints the rules refuse)
      egress('address_not_allowed'),
      failed(
        new oauth.OperationProcessingError('issuer mismatch', { code: oauth.JSON_ATTRIBUTE_COMPARISON }),
      ),
    ]) {
      const trust = await idTokenTrust(google, lookup({ 'https://accounts.example.com': absent }));
      assert.deepEqual(trust, {
        mode: 'discard',
        tried: ['https://accounts.example.com', 'https://oauth2.example.net'],
      });
    }
    // A document without a key set verifies nothing.
    const noKeys = await idTokenTrust(
      google,
      lookup({ 'https://accounts.example.com': doc('https://accounts.example.com', false) }),
    );
    assert.equal(noKeys.mode, 'discard');
  });

  it('waits rather than discards while a place cannot be read (5xx, 429, network, DNS, timeout)', async () => {
    for (const transient of [
      answered(503),
      answered(429),
      egress('network'),
      egress('dns_failed'),
      egress('timeout'),
    ]) {
      await assert.rejects(
        idTokenTrust(google, lookup({ 'https://accounts.example.com': transient })),
        (error) => error === transient,
      );
    }
    // Unless another place has the document.
    const trust = await idTokenTrust(
      google,
      lookup({
        'https://accounts.example.com': answered(502),
        'https://oauth2.example.net': doc('https://oauth2.example.net'),
      }),
    );
    assert.equal(trust.mode, 'verify');
  });

  it('warns at registration which applies, only for openid without enable_discovery', async () => {
    const found = lookup({ 'https://accounts.example.com': doc('https://accounts.example.com') });
    assert.equal((await openidWarning(google, found))?.code, 'id_token_verified');
    assert.equal((await openidWarning(google, lookup({})))?.code, 'id_token_discarded');
    assert.equal(
      (await openidWarning(google, lookup({ 'https://accounts.example.com': answered(500) })))?.code,
      'id_token_undecided',
    );
    const none = lookup({});
    assert.equal(await openidWarning({ ...google, scopes: ['email'] }, none), undefined);
    assert.equal(
      await openidWarning({ ...google, enable_discovery: true, issuer: 'https://x.example' }, none),
      undefined,
    );
    assert.deepEqual(none.asked, [], 'nothing fetched when there is nothing to decide');
  });
});
