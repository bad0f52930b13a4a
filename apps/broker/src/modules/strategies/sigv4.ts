import { createHash, createHmac } from 'node:crypto';
import type { Strategy } from './strategy.ts';

type Data = string | ArrayBuffer | ArrayBufferView;
const bytes = (data: Data) =>
  typeof data === 'string'
    ? data
    : ArrayBuffer.isView(data)
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : new Uint8Array(data);

/** node:crypto behind the Checksum interface of the AWS signer. */
export class Sha256 {
  private readonly hash;
  constructor(secret?: Data) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: Data) {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset() {}
}

/**
 * Signs a request with AWS Signature V4 through the AWS signer (@smithy/signature-v4, the one the
 * AWS SDK uses). Every header given is signed; the answer is the full header set to send.
 */
export async function signSigV4(
  strategy: Strategy,
  credentials: Readonly<Record<string, string>>,
  request: { method: string; url: URL; headers: Record<string, string>; body: Buffer | undefined },
): Promise<Record<string, string>> {
  const accessKeyId = credentials.access_key;
  const secretAccessKey = credentials.secret_key;
  const service = strategy.config.service;
  if (accessKeyId === undefined || secretAccessKey === undefined)
    throw new Error('credential fields access_key and secret_key are required');
  if (service === undefined) throw new Error('the strategy config has no service');
  // Loaded on first use: a broker that never signs does not pay for the signer at start-up.
  const { SignatureV4 } = await import('@smithy/signature-v4');
  const signer = new SignatureV4({
    credentials: {
      accessKeyId,
      secretAccessKey,
      ...(credentials.session_token ? { sessionToken: credentials.session_token } : {}),
    },
    region: strategy.config.region ?? 'us-east-1',
    service,
    sha256: Sha256,
    // S3 signs the path as sent; every other service escapes it once more (the AWS SDK does the same).
    uriEscapePath: service !== 's3',
  });
  const query: Record<string, string | string[]> = {};
  for (const key of new Set(request.url.searchParams.keys())) {
    const values = request.url.searchParams.getAll(key);
    query[key] = values.length === 1 ? values[0]! : values;
  }
  const signed = await signer.sign({
    method: request.method,
    protocol: request.url.protocol,
    hostname: request.url.hostname,
    ...(request.url.port === '' ? {} : { port: Number(request.url.port) }),
    path: request.url.pathname,
    query,
    headers: { ...request.headers, host: request.url.host },
    body: request.body ?? '',
  });
  return signed.headers;
}
