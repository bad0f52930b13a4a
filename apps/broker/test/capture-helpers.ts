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
