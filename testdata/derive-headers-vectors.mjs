// The `headers` strategy's vectors (decision 0015, "Several headers"), derived by hand: each
// expected value is the template with `{field}` replaced by that credential field's value, written
// out literally below, not computed by any implementation. Called by derive-strategy-vectors.mjs.
export function headersVectors({ ok, err }) {
  const url = 'https://api.example.com/v1/validate';
  ok(
    'headers: two keys in two headers (Datadog), other headers kept',
    { type: 'headers', config: { 'DD-API-KEY': '{api_key}', 'DD-APPLICATION-KEY': '{application_key}' } },
    { api_key: 'dd-api-1234', application_key: 'dd-app-5678' },
    { url, headers: { accept: 'application/json' } },
    {
      headers: {
        accept: 'application/json',
        'dd-api-key': 'dd-api-1234',
        'dd-application-key': 'dd-app-5678',
      },
      url,
    },
  );
  ok(
    'headers: a key and a fixed value (Anthropic), the query kept',
    { type: 'headers', config: { 'x-api-key': '{api_key}', 'anthropic-version': '2023-06-01' } },
    { api_key: 'sk-ant-0001' },
    { url: 'https://api.example.com/v1/messages?beta=true', method: 'POST', body: '{"a":1}' },
    {
      headers: { 'x-api-key': 'sk-ant-0001', 'anthropic-version': '2023-06-01' },
      url: 'https://api.example.com/v1/messages',
    },
  );
  ok(
    'headers: text around placeholders, a field used twice, a value holding $& and {braces} is not expanded again',
    {
      type: 'headers',
      config: { Authorization: 'Token token={token}, user={user}', 'X-Echo': '{token}/{token}' },
    },
    { token: 't$&1{user}', user: 'ann' },
    { url },
    {
      headers: { authorization: 'Token token=t$&1{user}, user=ann', 'x-echo': 't$&1{user}/t$&1{user}' },
      url,
    },
  );
  ok(
    'headers: replaces a header already on the request, whatever its case',
    { type: 'headers', config: { 'X-Api-Key': '{api_key}' } },
    { api_key: 'fresh' },
    { url, headers: { 'x-api-key': 'stale' } },
    { headers: { 'x-api-key': 'fresh' }, url },
  );
  err(
    'headers: a missing field is an error naming it, not the values',
    { type: 'headers', config: { 'DD-API-KEY': '{api_key}', 'DD-APPLICATION-KEY': '{application_key}' } },
    { api_key: 'dd-secret-value' },
    { url },
    ['application_key'],
  );
  err(
    'headers: no header configured',
    { type: 'headers', config: {} },
    { api_key: 'k-secret-value' },
    { url },
    ['headers'],
  );
}
