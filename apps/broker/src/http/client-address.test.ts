import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addressKey } from './client-address.ts';

describe('addressKey', () => {
  it('counts an IPv6 address as its /64, however it is written', () => {
    for (const ip of [
      '2001:db8:1:2::1',
      '2001:0db8:0001:0002:ffff:ffff:ffff:ffff',
      '2001:DB8:1:2:a:b:c:d',
      '2001:db8:1:2::9%eth0',
    ])
      assert.equal(addressKey(ip), '2001:db8:1:2::/64', ip);
    assert.equal(addressKey('2001:db8:1:3::1'), '2001:db8:1:3::/64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    assert.equal(addressKey('2001:db8::'), '2001:db8:0:0::/64');
    assert.equal(addressKey('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64');
    assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  });

  it('counts IPv4, mapped or not, as itself, and leaves what is no address alone', () => {
    assert.equal(addressKey('192.0.2.1'), '192.0.2.1');
    assert.equal(addressKey('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(addressKey('::FFFF:192.0.2.1'), '192.0.2.1');
    assert.equal(addressKey('unknown'), 'unknown');
    assert.equal(addressKey(''), '');
  });
});
