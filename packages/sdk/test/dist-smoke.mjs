// Loads the built package (dist/) the way a consumer does and exercises the offline parts, so the
// published JavaScript is proven on whatever Node runs this (run-tests.sh uses Node 20 when present).
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import {
  applyStrategy,
  BrokerUnavailableError,
  ConfigurationError,
  createBridgeFetch,
  NexusAdmin,
  NexusClient,
} from '@nexus-broker/sdk';

assert.throws(() => new NexusAdmin({ env: {} }), ConfigurationError);
const request = () => ({
  url: new URL('https://api.example.com/x?a=1'),
  method: 'POST',
  headers: {},
  body: new TextEncoder().encode('body'),
});
const now = () => Date.UTC(2026, 0, 1);
const hmac = await applyStrategy(
  { type: 'hmac_payload', config: { header_name: 'X-Sig' } },
  { api_secret: 's' },
  request(),
  { now },
);
assert.equal(hmac.headers['x-sig'], createHmac('sha256', 's').update('body').digest('hex'));
const signed = await applyStrategy(
  { type: 'aws_sigv4', config: { service: 'svc' } },
  { access_key: 'AK', secret_key: 'SK' },
  request(),
  { now },
);
assert.match(
  signed.headers.authorization,
  /^AWS4-HMAC-SHA256 Credential=AK\/20260101\/us-east-1\/svc\/aws4_request/,
);

const client = new NexusClient({
  apiKey: 'k',
  env: {},
  baseUrl: 'http://127.0.0.1:9',
  retry: { maxRetries: 0 },
});
const bridge = createBridgeFetch(
  { client, connectionId: '00000000-0000-4000-8000-000000000000' },
  {
    brokerRetry: { maxRetries: 0 },
  },
);
await assert.rejects(bridge('http://127.0.0.1:9/'), BrokerUnavailableError);
console.log(`dist smoke test passed on Node ${process.version}`);
