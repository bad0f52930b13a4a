import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SecretBytes } from '../config/secret-value.ts';
import { envKeyMatcher } from './env-keys.ts';

const key = (name: string, secret: string, scope: 'full' | 'read' = 'full') => ({
  name,
  key: new SecretBytes(new TextEncoder().encode(secret)),
  scope,
});

test('an environment key is recognised by its whole secret, with its name and scope', () => {
  const match = envKeyMatcher([
    key('env:ops', 'ops-secret-0123456789'),
    key('env:viewer', 'view-secret-abcdef', 'read'),
  ]);
  assert.deepEqual(match('ops-secret-0123456789'), { name: 'env:ops', scope: 'full' });
  assert.deepEqual(match('view-secret-abcdef'), { name: 'env:viewer', scope: 'read' });
  // A prefix, an extension or another case of a key is not that key.
  assert.equal(match('ops-secret-012345678'), undefined);
  assert.equal(match('ops-secret-0123456789x'), undefined);
  assert.equal(match('OPS-SECRET-0123456789'), undefined);
  assert.equal(match(''), undefined);
});

test('with no environment keys nothing is recognised', () => {
  assert.equal(envKeyMatcher([])('anything'), undefined);
});

test('the match names the key and never carries its secret', () => {
  const found = envKeyMatcher([key('env:ops', 'ops-secret-0123456789')])('ops-secret-0123456789');
  assert.ok(found);
  assert.doesNotMatch(JSON.stringify(found), /ops-secret/);
});
