/**
 * Issue #25: the original's metric names on GET /metrics, next to Nexus's own, moved by a real
 * consent, code exchange, token fetch, refresh and capture against a real OpenID provider. Label
 * values are bounded: provider names and outcomes, never users, connections or credentials.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { json } from './harness.ts';
import { RETURN, Scenario } from './oauth-scenario.ts';

/** The value of one series in the Prometheus text format (0 when it is not there). */
function sample(text: string, series: string): number {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    if (line.slice(0, at) === series) return Number(line.slice(at + 1));
  }
  return 0;
}

describe("the original's metric names on /metrics", () => {
  const s = new Scenario();
  const metrics = async () => (await s.call({ method: 'GET', url: '/metrics' }, 200)).body;
  before(async () => {
    await s.start();
  });
  afterEach(() => s.idp.setTokenEndpointFault('none'));
  after(() => s.close());

  it('lists every name with its type from the start, beside the nexus_* ones', async () => {
    const text = await metrics();
    for (const [name, type] of [
      ['oauth_consents_created_total', 'counter'],
      ['oauth_consents_with_openid_total', 'counter'],
      ['oauth_token_exchanges_total', 'counter'],
      ['oauth_exchange_duration_seconds', 'histogram'],
      ['oauth_id_tokens_returned_total', 'counter'],
      ['oauth_token_get_total', 'counter'],
      ['oauth_token_refreshes_total', 'counter'],
      ['oauth_refresh_duration_seconds', 'histogram'],
      ['oauth_credential_captures_total', 'counter'],
      ['oidc_discovery_total', 'counter'],
      ['oidc_discovery_duration_seconds', 'histogram'],
      ['oidc_verifications_total', 'counter'],
      ['oidc_verification_duration_seconds', 'histogram'],
    ])
      assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), name);
    assert.match(text, /^nexus_http_requests_total\{/m, "Nexus's own are still there");
    // Registered up front, as the original's ConstLabels series were.
    assert.match(text, /^oauth_token_exchanges_total\{status="error"\} 0$/m);
    // Registering the discovery provider fetched its document.
    assert.ok(sample(text, 'oidc_discovery_total{result="success"}') >= 1, 'discovery counted');
    assert.ok(sample(text, 'oidc_discovery_duration_seconds_count') >= 1);
  });

  it('counts a consent, its code exchange and a token fetch, labelled by provider name only', async () => {
    const before = await metrics();
    const id = await s.connect('idp-basic', 'metrics-user-1');
    await s.token(id);
    await s.token(id);
    const after = await metrics();
    const moved = (series: string) => sample(after, series) - sample(before, series);
    assert.equal(moved('oauth_consents_created_total'), 1);
    assert.equal(moved('oauth_consents_with_openid_total'), 0, 'idp-basic asks for api:read only');
    assert.equal(moved('oauth_token_exchanges_total{status="success"}'), 1);
    assert.equal(moved('oauth_token_exchanges_total{status="error"}'), 0);
    assert.equal(moved('oauth_exchange_duration_seconds_count'), 1);
    assert.ok(moved('oauth_exchange_duration_seconds_sum') > 0);
    assert.equal(moved('oauth_token_get_total{provider="idp-basic",has_id_token="false"}'), 2);
    for (const text of [id, 'metrics-user-1', (await s.stored(id)).access_token])
      assert.ok(!after.includes(text), 'no connection, user or credential in any label');
  });

  it('counts an openid consent, its verified id_token, and an on-demand refresh', async () => {
    const before = await metrics();
    const id = await s.connect('idp-discovered', 'metrics-user-2');
    const refreshed = await s.call({ method: 'POST', url: `/v1/refresh/${id}` });
    assert.equal(refreshed.statusCode, 200, refreshed.body);
    const after = await metrics();
    const moved = (series: string) => sample(after, series) - sample(before, series);
    assert.equal(moved('oauth_consents_created_total'), 1);
    assert.equal(moved('oauth_consents_with_openid_total'), 1);
    assert.equal(moved('oidc_verifications_total{result="success"}'), 1);
    assert.equal(moved('oidc_verification_duration_seconds_count'), 1);
    assert.equal(moved('oauth_id_tokens_returned_total'), 1);
    assert.equal(moved('oauth_token_refreshes_total{status="success"}'), 1);
    assert.equal(moved('oauth_refresh_duration_seconds_count'), 1);
    assert.equal(
      moved('oauth_token_get_total{provider="idp-discovered",has_id_token="false"}'),
      0,
      'a refresh is not a retrieval, as in the original',
    );
  });

  it('counts a failed code exchange as status="error"', async () => {
    const before = await metrics();
    const started = json<{ authUrl: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: 'metrics-user-3', provider_name: 'idp-basic', return_url: RETURN },
        },
        200,
      ),
    );
    const callback = await s.idp.consent(started.authUrl);
    await s.idp.setTokenEndpointFault('error500');
    const res = await s.call({ method: 'GET', url: callback.pathname + callback.search, key: null }, 302);
    assert.equal(new URL(res.headers.location as string).searchParams.get('status'), 'failed');
    const after = await metrics();
    const moved = (series: string) => sample(after, series) - sample(before, series);
    assert.equal(moved('oauth_token_exchanges_total{status="error"}'), 1);
    assert.equal(moved('oauth_token_exchanges_total{status="success"}'), 0);
    assert.equal(moved('oauth_exchange_duration_seconds_count'), 1);
  });

  it('counts credential captures by status', async () => {
    await s.call(
      {
        method: 'POST',
        url: '/providers',
        payload: { profile: { name: 'metrics-key', auth_type: 'api_key' } },
      },
      201,
    );
    const before = await metrics();
    const started = json<{ state: string; connection_id: string }>(
      await s.call(
        {
          method: 'POST',
          url: '/v1/request-connection',
          payload: { user_id: 'metrics-user-4', provider_name: 'metrics-key', return_url: RETURN },
        },
        200,
      ),
    );
    const capture = (credentials: Record<string, string>) =>
      s.call({
        method: 'POST',
        url: '/v1/capture-credential',
        key: null,
        payload: { state: started.state, credentials },
      });
    assert.equal((await capture({})).statusCode, 400, 'a missing field');
    assert.equal((await capture({ api_key: 'metrics-key-value' })).statusCode, 200);
    await s.token(started.connection_id);
    const after = await metrics();
    const moved = (series: string) => sample(after, series) - sample(before, series);
    assert.equal(moved('oauth_consents_created_total'), 1, 'a capture link is a consent, as in the original');
    assert.equal(moved('oauth_credential_captures_total{status="error"}'), 1);
    assert.equal(moved('oauth_credential_captures_total{status="success"}'), 1);
    assert.equal(moved('oauth_token_get_total{provider="metrics-key",has_id_token="false"}'), 1);
    assert.ok(!after.includes('metrics-key-value'));
  });
});
