/**
 * AWS Signature Version 4 through the AWS SDK's own signer (`@smithy/signature-v4`), with a
 * SHA-256 over `node:crypto` (the signer takes a hash constructor; HMAC when given a secret).
 */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';

type SourceData = string | ArrayBuffer | ArrayBufferView;

const toBuffer = (data: SourceData): Buffer =>
  typeof data === 'string'
    ? Buffer.from(data, 'utf8')
    : ArrayBuffer.isView(data)
      ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
      : Buffer.from(data);

/** SHA-256 (or HMAC-SHA-256 when constructed with a secret) in the smithy `Checksum` shape. */
export class NodeSha256 {
  readonly #secret: SourceData | undefined;
  #hash: Hash | Hmac;

  constructor(secret?: SourceData) {
    this.#secret = secret;
    this.#hash = this.#fresh();
  }

  #fresh(): Hash | Hmac {
    return this.#secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(this.#secret));
  }

  update(data: SourceData): void {
    this.#hash.update(toBuffer(data));
  }

  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }

  reset(): void {
    this.#hash = this.#fresh();
  }
}

export interface SigV4Input {
  url: URL;
  method: string;
  /** Lower-case header names. `host` is added by the signer input from the URL. */
  headers: Record<string, string>;
  body: Uint8Array | undefined;
  region: string;
  service: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
  signingDate: Date;
}

/** The headers to send: the input's plus `authorization`, `x-amz-date`, `x-amz-content-sha256`, … */
export async function signSigV4(input: SigV4Input): Promise<Record<string, string>> {
  const signer = new SignatureV4({
    service: input.service,
    region: input.region,
    credentials: {
      accessKeyId: input.accessKeyId,
      secretAccessKey: input.secretAccessKey,
      ...(input.sessionToken ? { sessionToken: input.sessionToken } : {}),
    },
    sha256: NodeSha256,
    // S3 signs the path as sent; every other service escapes it once more (AWS SigV4 docs, and the
    // broker's signer).
    uriEscapePath: input.service !== 's3',
  });
  const query: Record<string, string | string[]> = {};
  for (const [name, value] of input.url.searchParams) {
    const existing = query[name];
    if (existing === undefined) query[name] = value;
    else query[name] = Array.isArray(existing) ? [...existing, value] : [existing, value];
  }
  const signed = await signer.sign(
    {
      method: input.method,
      protocol: input.url.protocol,
      hostname: input.url.hostname,
      ...(input.url.port ? { port: Number(input.url.port) } : {}),
      path: input.url.pathname,
      query,
      headers: { ...input.headers, host: input.url.host },
      body: input.body ?? '',
    },
    { signingDate: input.signingDate },
  );
  return signed.headers;
}
