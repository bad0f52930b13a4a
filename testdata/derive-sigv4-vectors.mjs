// The aws_sigv4 strategy's vectors, with a SigV4 signer written from the AWS documentation ("Create
// a signed AWS API request": canonical request, string to sign, signing key), NOT by calling any
// Nexus implementation; the results were checked against @smithy/signature-v4 and botocore's
// SigV4Auth. Called by derive-strategy-vectors.mjs.
import { createHash, createHmac } from 'node:crypto';

const sha256hex = (b) => createHash('sha256').update(b).digest('hex');
const hmac = (k, d) => createHmac('sha256', k).update(d).digest();
const enc = (s) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

function sigv4({ method, url, headers, body, region, service, ak, sk, token, now }) {
  const u = new URL(url);
  const amzDate = now.replace(/[-:]/g, '').replace(/\.\d+/, '');
  const date = amzDate.slice(0, 8);
  const signed = { ...headers, host: u.host, 'x-amz-date': amzDate };
  if (token) signed['x-amz-security-token'] = token;
  // Non-S3: each path segment URI-encoded again (path as sent is already encoded).
  // S3: the path as sent, encoded once (AWS: "except for Amazon S3 which only gets URI-encoded once").
  const path =
    service === 's3'
      ? u.pathname
      : u.pathname
          .split('/')
          .map((seg) => enc(seg))
          .join('/');
  const pairs = [...u.searchParams].map(([k, v]) => [enc(k), enc(v)]);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  const cq = pairs.map(([k, v]) => `${k}=${v}`).join('&');
  const names = Object.keys(signed)
    .map((n) => n.toLowerCase())
    .sort();
  const ch = names.map((n) => `${n}:${String(signed[n]).trim().replace(/\s+/g, ' ')}\n`).join('');
  const sh = names.join(';');
  const creq = [method, path, cq, ch, sh, sha256hex(Buffer.from(body ?? '', 'utf8'))].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const sts = ['AWS4-HMAC-SHA256', amzDate, scope, sha256hex(creq)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${sk}`, date), region), service), 'aws4_request');
  const sig = createHmac('sha256', key).update(sts).digest('hex');
  const out = {
    ...headers,
    'x-amz-date': amzDate,
    authorization: `AWS4-HMAC-SHA256 Credential=${ak}/${scope}, SignedHeaders=${sh}, Signature=${sig}`,
  };
  if (token) out['x-amz-security-token'] = token;
  return { out, creq };
}

/**
 * Adds the aws_sigv4 vectors: `add` takes a whole vector, `err` a refusal; `now` is the signing
 * time, `jsonBody` the JSON body the other strategies' vectors send too.
 */
export function sigv4Vectors({ add, err, now, jsonBody }) {
  const sv = (name, config, creds, request, extra = {}) => {
    const r = { method: 'GET', headers: {}, body: '', ...request };
    const headers = { ...r.headers, 'x-amz-content-sha256': sha256hex(Buffer.from(r.body, 'utf8')) };
    const { out, creq } = sigv4({
      ...r,
      headers,
      region: config.region ?? 'us-east-1',
      service: config.service,
      ak: creds.access_key,
      sk: creds.secret_key,
      token: creds.session_token,
      now,
    });
    const u = new URL(r.url);
    add({
      name,
      strategy: { type: 'aws_sigv4', config },
      credentials: creds,
      request: { ...r, headers },
      now,
      ...extra,
      expected: {
        headers: out,
        url: `${u.origin}${u.pathname}`,
        query: [...u.searchParams],
        canonical_request: creq,
      },
    });
  };
  const AK = 'AKIDEXAMPLE';
  const SK = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
  sv(
    'aws_sigv4: GET, empty body, default region us-east-1, no session token, unsorted query with a space',
    { service: 'execute-api' },
    { access_key: AK, secret_key: SK },
    { url: 'https://abc123.execute-api.us-east-1.amazonaws.com/prod/items?limit=10&a=1%202&b=x~y' },
  );
  sv(
    'aws_sigv4: POST with a JSON body, region, session token, content-type signed',
    { service: 'execute-api', region: 'eu-west-1' },
    { access_key: AK, secret_key: SK, session_token: 'FQoGZXIvYXdzEXAMPLE//token+=' },
    {
      method: 'POST',
      url: 'https://abc123.execute-api.eu-west-1.amazonaws.com/prod/orders',
      headers: { 'content-type': 'application/json' },
      body: jsonBody,
    },
  );
  sv(
    'aws_sigv4: non-default port in the signed host, empty session_token means none',
    { service: 'es', region: 'us-west-2' },
    { access_key: AK, secret_key: SK, session_token: '' },
    { url: 'https://search.example.com:9200/_search?q=title:nexus' },
  );
  sv(
    'aws_sigv4: a path with an escaped space is escaped again for services other than S3',
    { service: 'execute-api', region: 'eu-west-1' },
    { access_key: AK, secret_key: SK },
    { url: 'https://abc123.execute-api.eu-west-1.amazonaws.com/prod/files/my%20report.pdf' },
  );
  sv(
    'aws_sigv4: S3 signs the path as sent, escaped once',
    { service: 's3', region: 'eu-west-1' },
    { access_key: AK, secret_key: SK },
    { url: 'https://examplebucket.s3.eu-west-1.amazonaws.com/photos/my%20photo.jpg' },
  );
  err(
    'aws_sigv4: missing secret_key names the field',
    { type: 'aws_sigv4', config: { service: 'execute-api' } },
    { access_key: AK },
    { url: 'https://abc123.execute-api.us-east-1.amazonaws.com/prod/items' },
    ['secret_key'],
  );
  err(
    'aws_sigv4: no service configured',
    { type: 'aws_sigv4', config: { region: 'eu-west-1' } },
    { access_key: AK, secret_key: SK },
    { url: 'https://abc123.execute-api.us-east-1.amazonaws.com/prod/items' },
    ['service'],
  );
}
