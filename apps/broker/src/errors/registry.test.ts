import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { secretErrors } from '../modules/secrets/secrets.errors.ts';
import { renderErrorDocs } from './docs.ts';
import { allErrorCodes, allReturnUrlCodes } from './registry.ts';

describe('error catalogue', () => {
  it('has unique, snake_case codes with a status and a message', () => {
    const codes = allErrorCodes();
    assert.ok(codes.size > 10);
    for (const [code, spec] of codes) {
      assert.match(code, /^[a-z][a-z0-9_]*$/, code);
      assert.ok(spec.status >= 400 && spec.status < 600, code);
      assert.ok(spec.message.length > 0, code);
    }
  });

  it('answers 404 for every *_not_found code', () => {
    for (const [code, spec] of allErrorCodes()) {
      if (code.endsWith('_not_found')) assert.equal(spec.status, 404, code);
    }
  });

  it('lists the codes a return_url can carry, snake_case with a message, and which of them are HTTP codes too', () => {
    const codes = allReturnUrlCodes();
    for (const [code, spec] of codes) {
      assert.match(code, /^[a-z][a-z0-9_]*$/, code);
      assert.ok(spec.message.length > 0, code);
    }
    for (const code of ['id_token_invalid', 'token_exchange_failed', 'provider_unavailable', 'state_expired'])
      assert.ok(codes.has(code), code);
    // A secret backend failure during consent passes its code on: every one of them is listed.
    for (const code of Object.keys(secretErrors)) assert.ok(codes.has(code), code);
    // The codes shared with the HTTP table, deliberately: a new overlap must be a decision.
    const http = allErrorCodes();
    const shared = [...codes.keys()].filter((code) => http.has(code)).sort();
    assert.deepEqual(
      shared.filter((code) => !code.startsWith('secret_')),
      ['discovery_failed', 'internal_error', 'provider_not_found', 'provider_unavailable'],
    );
  });

  it('is documented in docs/errors.md (run `npm run docs:config` after adding a code)', () => {
    const file = readFileSync(join(import.meta.dirname, '..', '..', '..', '..', 'docs', 'errors.md'), 'utf8');
    assert.equal(file, renderErrorDocs());
  });
});
