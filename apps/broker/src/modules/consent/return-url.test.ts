import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { returnUrlAllowed, withOutcome } from './return-url.ts';

const prod = {
  allowedDomains: ['app.example.com', '*.tenants.example.com'],
  allowLoopback: false,
  requireHttps: true,
};
const dev = { ...prod, allowLoopback: true, requireHttps: false };

describe('return URL allow-list', () => {
  it('accepts exact hosts and *.suffix subdomains', () => {
    assert.equal(returnUrlAllowed('https://app.example.com/done?x=1', prod), true);
    assert.equal(returnUrlAllowed('https://acme.tenants.example.com/cb', prod), true);
    assert.equal(returnUrlAllowed('https://a.b.tenants.example.com/cb', prod), true);
  });

  it('rejects open-redirect look-alikes', () => {
    for (const url of [
      'https://tenants.example.com/cb',
      'https://app.example.com.evil.test/cb',
      'https://evilapp.example.com/cb',
      'https://evil.test/?https://app.example.com',
      'https://app.example.com@evil.test/',
      'https://user:pw@app.example.com/',
      'javascript:alert(1)',
      '//app.example.com/cb',
      'not a url',
    ]) {
      assert.equal(returnUrlAllowed(url, prod), false, url);
    }
  });

  it('requires https in production, allows localhost only in development', () => {
    assert.equal(returnUrlAllowed('http://app.example.com/cb', prod), false);
    assert.equal(returnUrlAllowed('http://localhost:3000/cb', prod), false);
    assert.equal(returnUrlAllowed('http://127.0.0.1:3000/cb', prod), false);
    assert.equal(returnUrlAllowed('http://localhost:3000/cb', dev), true);
    assert.equal(returnUrlAllowed('http://app.example.com/cb', dev), true);
    assert.equal(returnUrlAllowed('http://localhost.evil.test/cb', dev), false);
  });

  it("always allows the broker's own connect finish page, and nothing else of the broker", () => {
    const own = { ...prod, own: 'https://nexus.example.net/connect/finish' };
    assert.equal(returnUrlAllowed('https://nexus.example.net/connect/finish?session=s1', own), true);
    assert.equal(returnUrlAllowed('https://nexus.example.net/connect/finish?session=s1', prod), false);
    for (const url of [
      'https://nexus.example.net/connect/finish/x',
      'https://nexus.example.net/other',
      'http://nexus.example.net/connect/finish',
      'https://nexus.example.net:8443/connect/finish',
      'https://u:p@nexus.example.net/connect/finish',
    ])
      assert.equal(returnUrlAllowed(url, own), false, url);
  });

  it('adds the outcome without dropping the caller’s own parameters', () => {
    const url = new URL(
      withOutcome('https://app.example.com/cb?session=abc', { status: 'failed', error: 'access_denied' }),
    );
    assert.equal(url.searchParams.get('session'), 'abc');
    assert.equal(url.searchParams.get('status'), 'failed');
    assert.equal(url.searchParams.get('error'), 'access_denied');
  });
});
