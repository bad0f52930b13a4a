import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as oauth from 'oauth4webapi';
import { cryptoErrors } from '../../crypto/crypto.errors.ts';
import { errorFrom, NexusError } from '../../errors/nexus-error.ts';
import { providerErrors } from '../providers/providers.errors.ts';
import { secretErrors } from '../secrets/secrets.errors.ts';
import { callbackFailure } from './callback-failure.ts';

/** oauth4webapi's own error, as it throws it (the class and code it exports). */
const processing = (code: string) => new oauth.OperationProcessingError('any text', { code });

/**
 * The cases a real provider cannot be made to produce on demand; the others are driven through
 * oidc-provider and a test double token endpoint in test/consent-failures.test.ts.
 */
describe('callbackFailure', () => {
  it('decides by the step and oauth4webapi’s code, never by the message', () => {
    // Same code, same text: the step says whether the answer or its id_token failed.
    const invalid = processing(oauth.INVALID_RESPONSE);
    assert.equal(callbackFailure('token_response', invalid), 'token_exchange_failed');
    assert.equal(callbackFailure('id_token', invalid), 'id_token_invalid');
    assert.equal(callbackFailure('authorization_response', invalid), 'authorization_failed');
    // A message that reads like an id_token problem changes nothing.
    const misleading = new oauth.OperationProcessingError('id_token nonce "iss" JWT signature', {
      code: oauth.RESPONSE_IS_NOT_JSON,
    });
    assert.equal(callbackFailure('token_response', misleading), 'token_exchange_failed');
  });

  it('reads a key set that cannot be used as the provider’s failure, a key that does not fit as the id_token’s', () => {
    for (const code of [oauth.RESPONSE_IS_NOT_CONFORM, oauth.RESPONSE_IS_NOT_JSON, oauth.PARSE_ERROR])
      assert.equal(callbackFailure('id_token_signature', processing(code)), 'token_exchange_failed', code);
    assert.equal(callbackFailure('id_token_signature', processing(oauth.KEY_SELECTION)), 'id_token_invalid');
    assert.equal(
      callbackFailure('id_token_signature', new oauth.UnsupportedOperationError('unsupported JWS algorithm')),
      'id_token_invalid',
    );
  });

  it('sees a request that got no answer as provider_unavailable, and oauth4webapi’s argument errors as not', () => {
    const refused = new TypeError('fetch failed', {
      cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }),
    });
    assert.equal(callbackFailure('token_request', refused), 'provider_unavailable');
    assert.equal(
      callbackFailure('token_request', new DOMException('The operation timed out.', 'TimeoutError')),
      'provider_unavailable',
    );
    const argument = Object.assign(new TypeError('"as" must be an object'), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.equal(callbackFailure('token_request', argument), 'token_exchange_failed');
  });

  it('passes on the broker’s own caller-safe codes, and hides internal ones', () => {
    assert.equal(callbackFailure('setup', errorFrom(providerErrors, 'discovery_failed')), 'discovery_failed');
    assert.equal(
      callbackFailure('setup', errorFrom(secretErrors, 'secret_backend_sealed')),
      'secret_backend_sealed',
    );
    assert.equal(callbackFailure('setup', errorFrom(cryptoErrors, 'decryption_failed')), 'internal_error');
    // Caller-safe but not a code a return_url documents: not passed on.
    assert.equal(callbackFailure('setup', new NexusError('invalid_provider', 400, 'x')), 'internal_error');
    assert.equal(callbackFailure('setup', new Error('anything else')), 'token_exchange_failed');
  });
});
