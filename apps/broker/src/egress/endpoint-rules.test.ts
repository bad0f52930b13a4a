import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { addressProblem, endpointProblem } from './endpoint-rules.ts';

const production = { allowLoopback: false, allowCidrs: [] };
const productionAllowing = { allowLoopback: false, allowCidrs: ['127.0.0.2/32', '10.20.0.0/16'] };
const development = { allowLoopback: true, allowCidrs: [] };

/** Loopback, link-local, private and special addresses in the notations a URL parser accepts. */
const SPECIAL_HOSTS = [
  '127.0.0.1',
  '2130706433',
  '0177.0.0.1',
  '0x7f.1',
  '0x7f000001',
  '017700000001',
  '127.1',
  '127.0.0.1.',
  '１２７.０.０.１',
  '[::ffff:127.0.0.1]',
  '[::ffff:7f00:1]',
  '[::127.0.0.1]',
  '[64:ff9b::7f00:1]',
  '[::1]',
  '[0:0:0:0:0:0:0:1]',
  '0',
  '0.0.0.0',
  '[::]',
  '169.254.169.254',
  '0xa9.0xfe.0xa9.0xfe',
  '[::ffff:169.254.169.254]',
  '[fe80::1]',
  '10.0.0.1',
  '10.1',
  '172.16.0.1',
  '192.168.1.1',
  '100.64.0.1',
  '[fd00::1]',
  '224.0.0.1',
];

describe('URLs the broker calls', () => {
  test('production refuses every special-purpose literal, whatever its notation', () => {
    for (const host of SPECIAL_HOSTS) {
      const problem = addressProblem(new URL(`https://${host}:8443/token`), production);
      assert.match(problem ?? '', /^must not name .*special-purpose address/, host);
    }
  });

  test('the message names the address as parsed, so an odd notation is recognisable', () => {
    assert.match(addressProblem(new URL('https://0x7f.1/t'), production)!, /must not name 127\.0\.0\.1,/);
    assert.match(addressProblem(new URL('https://[::ffff:127.0.0.1]/t'), production)!, /::ffff:7f00:1/);
  });

  test('production refuses loopback names; development allows loopback, not other ranges', () => {
    for (const host of ['localhost', 'LOCALHOST', 'localhost.', 'idp.localhost', 'idp.localhost.'])
      assert.match(addressProblem(new URL(`https://${host}/t`), production)!, /loopback host/, host);
    for (const host of ['localhost', '127.0.0.1', '0x7f.1', '[::1]', 'idp.localhost'])
      assert.equal(addressProblem(new URL(`https://${host}/t`), development), undefined, host);
    for (const host of ['169.254.169.254', '10.0.0.1', '[fe80::1]', '[::ffff:10.0.0.1]'])
      assert.ok(addressProblem(new URL(`https://${host}/t`), development), host);
  });

  test('the operator-allowed ranges pass, nothing next to them does', () => {
    assert.equal(addressProblem(new URL('https://127.0.0.2:8443/t'), productionAllowing), undefined);
    assert.equal(addressProblem(new URL('https://10.20.3.4/t'), productionAllowing), undefined);
    assert.ok(addressProblem(new URL('https://127.0.0.1:8443/t'), productionAllowing));
    assert.ok(addressProblem(new URL('https://10.21.0.1/t'), productionAllowing));
  });

  test('public addresses and names are left to the guard at request time', () => {
    for (const host of ['idp.example.com', '93.184.216.34', '[2606:4700:4700::1111]', '127.0.0.1.nip.io'])
      assert.equal(addressProblem(new URL(`https://${host}/t`), production), undefined, host);
  });

  test('an endpoint a document names must be https, plain http only to loopback in development', () => {
    assert.equal(endpointProblem(new URL('http://idp.example.com/t'), production), 'must use https');
    assert.equal(endpointProblem(new URL('http://127.0.0.1:9000/t'), production), 'must use https');
    assert.equal(endpointProblem(new URL('http://127.0.0.1:9000/t'), development), undefined);
    assert.equal(endpointProblem(new URL('http://localhost:9000/t'), development), undefined);
    assert.equal(endpointProblem(new URL('http://idp.example.com/t'), development), 'must use https');
    assert.match(endpointProblem(new URL('https://169.254.169.254/t'), production)!, /special-purpose/);
    assert.equal(
      endpointProblem(new URL('https://u:p@idp.example.com/t'), production),
      'must not contain credentials',
    );
  });
});
