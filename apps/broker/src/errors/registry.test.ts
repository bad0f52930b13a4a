import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { renderErrorDocs } from './docs.ts';
import { allErrorCodes } from './registry.ts';

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

  it('is documented in docs/errors.md (run `npm run docs:config` after adding a code)', () => {
    const file = readFileSync(join(import.meta.dirname, '..', '..', '..', '..', 'docs', 'errors.md'), 'utf8');
    assert.equal(file, renderErrorDocs());
  });
});
