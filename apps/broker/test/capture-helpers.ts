/**
 * Hosted capture driven as a browser and an agent would: a connection requested for a static
 * provider, its credentials posted to the capture endpoint (no key: the browser has none), and
 * the connection's status read back.
 */
import assert from 'node:assert/strict';
import { json, type TestBroker } from './harness.ts';

export const CAPTURE_RETURN_URL = 'http://localhost:3000/done';

/** Requests a connection to `provider` for `userId`; answers its capture state and id. */
export async function startCapture(broker: TestBroker, provider: string, userId: string) {
  const res = await broker.request({
    method: 'POST',
    url: '/v1/request-connection',
    payload: { user_id: userId, provider_name: provider, return_url: CAPTURE_RETURN_URL },
  });
  assert.equal(res.statusCode, 200, res.body);
  return json<{ state: string; connection_id: string }>(res);
}

/** Posts the captured credentials for a flow's `state`, as the hosted form does. */
export function capture(broker: TestBroker, state: string, credentials: Record<string, string>) {
  return broker.request({
    method: 'POST',
    url: '/v1/capture-credential',
    key: null,
    payload: { state, credentials },
  });
}

/** The connection's status, as an agent checks it. */
export async function statusOf(broker: TestBroker, connectionId: string) {
  const res = await broker.request({ method: 'GET', url: `/v1/check-connection/${connectionId}` });
  return json<{ status: string }>(res).status;
}

/**
 * A provider whose key goes in a header (`strategy`) at `apiBaseUrl`, and `userId`'s connection to
 * it with the key `key-<name>-0123456789` captured: the connection's id.
 */
export async function headerKeyedConnection(
  broker: TestBroker,
  name: string,
  apiBaseUrl: string,
  strategy: Record<string, unknown>,
  userId = 'user-1',
): Promise<string> {
  const created = await broker.request({
    method: 'POST',
    url: '/providers',
    payload: {
      profile: { name, auth_type: 'header', api_base_url: apiBaseUrl, params: { auth_strategy: strategy } },
    },
  });
  assert.equal(created.statusCode, 201, created.body);
  const flow = await startCapture(broker, name, userId);
  const done = await capture(broker, flow.state, { api_key: `key-${name}-0123456789` });
  assert.equal(done.statusCode, 200, done.body);
  return flow.connection_id;
}
