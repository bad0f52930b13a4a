/**
 * The upstream API of the SDK testbed: `ANY /<strategy>/<path>` answers 200 only when the request
 * carries a credential that strategy must have applied, checked independently of any SDK:
 * - oauth2: the bearer token is presented to the OpenID provider's userinfo endpoint;
 * - header, headers, query_param, basic_auth: the values equal credentials the testbed captured;
 * - hmac_payload: the HMAC is recomputed over the raw body received;
 * - aws_sigv4: the signature is recomputed with the AWS signer (@smithy/signature-v4) from the
 *   headers the client said it signed, the raw body and the client's own X-Amz-Date.
 *
 * The checks themselves (`createVerifier`) are shared with the long-lived servers (ws-server.ts,
 * grpc-server.ts); an access token the testbed made expire (`TokenExpiries`) is refused by all of them.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '../../apps/broker/src/modules/strategies/sigv4.ts';
import type { OidcFixture } from '../../apps/broker/test/oidc-fixture.ts';

export type Strategy =
  | 'oauth2'
  | 'header'
  | 'headers'
  | 'query_param'
  | 'basic_auth'
  | 'hmac_payload'
  | 'aws_sigv4';
export type StaticCredentials = Record<string, string>;
/** The credentials captured per strategy; a strategy without an entry accepts none. */
export type Issued = Partial<Record<Strategy, StaticCredentials[]>>;

const BODY_LIMIT = 10 * 1024 * 1024;

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((done, fail) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > BODY_LIMIT) {
        fail(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => done(Buffer.concat(chunks)));
    req.on('error', fail);
  });
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

const same = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

// The hash adapter only (node:crypto for the signer); the verification below is the testbed's own.
export { Sha256 };

const SIGV4 =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/;

/**
 * What a credential check reads: the request line, headers and raw body. An HTTP request, a
 * WebSocket handshake (empty body) and gRPC metadata (as headers, empty body) all fit.
 */
export interface CheckedRequest {
  method: string;
  url: URL;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** Answers null when the request carries a credential the strategy must have applied, else why not. */
export type Verifier = (strategy: Strategy, req: CheckedRequest) => Promise<string | null>;

/**
 * Access tokens the testbed made expire ahead of what the provider says: at once (`/idp/expire`) or
 * after a short lifetime (`/connect` with `token_ttl`). Every testbed server refuses them from then on.
 */
export class TokenExpiries {
  readonly #at = new Map<string, number>();
  expireAt(token: string, at: number): void {
    this.#at.set(token, at);
  }
  /** When the testbed makes the token expire, if it does. */
  expiresAt(token: string): number | undefined {
    return this.#at.get(token);
  }
  expired(token: string): boolean {
    const at = this.#at.get(token);
    return at !== undefined && at <= Date.now();
  }
}

/** The credential checks of every testbed server (this upstream, the WebSocket and gRPC servers). */
export function createVerifier(deps: {
  idp: OidcFixture;
  issued: Issued;
  expiries: TokenExpiries;
}): Verifier {
  async function verify(strategy: Strategy, req: CheckedRequest): Promise<string | null> {
    const { url, body } = req;
    const issued = deps.issued[strategy] ?? [];
    const header = (name: string) => {
      const value = req.headers[name];
      return typeof value === 'string' ? value : undefined;
    };
    switch (strategy) {
      case 'oauth2': {
        const auth = header('authorization');
        if (auth === undefined || !auth.startsWith('Bearer ')) return 'no bearer token';
        if (deps.expiries.expired(auth.slice(7))) return 'the token has expired';
        const res = await fetch(deps.idp.endpoints.userinfo, { headers: { authorization: auth } });
        await res.arrayBuffer();
        return res.status === 200 ? null : `the identity provider refused the token (${res.status})`;
      }
      case 'header': {
        const value = header('x-api-key');
        return issued.some((c) => value !== undefined && same(value, c.api_key!))
          ? null
          : 'X-Api-Key is wrong';
      }
      case 'headers': {
        // Both headers, from the same captured credential (the provider's templates: bed.ts).
        const key = header('x-api-key');
        const app = header('x-app-key');
        return issued.some(
          (c) =>
            key !== undefined && app !== undefined && same(key, c.api_key!) && same(app, `app ${c.app_key}`),
        )
          ? null
          : 'X-Api-Key or X-App-Key is wrong';
      }
      case 'query_param': {
        const value = url.searchParams.get('api_key');
        return issued.some((c) => value !== null && same(value, c.api_key!)) ? null : 'api_key is wrong';
      }
      case 'basic_auth': {
        const auth = header('authorization');
        if (auth === undefined || !auth.startsWith('Basic ')) return 'no basic credentials';
        const decoded = Buffer.from(auth.slice(6), 'base64').toString();
        return issued.some((c) => same(decoded, `${c.username}:${c.password}`))
          ? null
          : 'basic credentials are wrong';
      }
      case 'hmac_payload': {
        const mac = header('x-signature');
        if (mac === undefined) return 'no X-Signature';
        const ok = issued.some((c) =>
          same(mac, createHmac('sha256', c.api_secret!).update(body).digest('hex')),
        );
        return ok ? null : 'X-Signature does not match the body';
      }
      case 'aws_sigv4':
        return verifySigV4(req, issued);
    }
  }

  async function verifySigV4(req: CheckedRequest, issued: StaticCredentials[]): Promise<string | null> {
    const { url, body } = req;
    const match = SIGV4.exec(String(req.headers.authorization ?? ''));
    if (match === null) return 'no AWS4-HMAC-SHA256 authorization';
    const [, accessKey, , region, service, signedList, signature] = match as unknown as string[];
    if (region !== 'eu-west-1' || service !== 'testbed') return `wrong scope ${region}/${service}`;
    const credentials = issued.find((c) => c.access_key === accessKey);
    if (credentials === undefined) return 'unknown access key';
    const amzDate = String(req.headers['x-amz-date'] ?? '');
    const date = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
    if (date === null) return 'no X-Amz-Date';
    const signed = signedList!.split(';');
    if (!signed.includes('host') || !signed.includes('x-amz-date'))
      return 'host and x-amz-date must be signed';
    if (credentials.session_token && req.headers['x-amz-security-token'] !== credentials.session_token)
      return 'X-Amz-Security-Token is missing or wrong';
    const headers: Record<string, string> = {};
    for (const name of signed) {
      const value = req.headers[name];
      if (value === undefined) return `signed header ${name} is missing`;
      headers[name] = Array.isArray(value) ? value.join(',') : value;
    }
    const query: Record<string, string | string[]> = {};
    for (const key of new Set(url.searchParams.keys())) {
      const values = url.searchParams.getAll(key);
      query[key] = values.length === 1 ? values[0]! : values;
    }
    const signer = new SignatureV4({
      credentials: {
        accessKeyId: credentials.access_key!,
        secretAccessKey: credentials.secret_key!,
        ...(credentials.session_token ? { sessionToken: credentials.session_token } : {}),
      },
      region: region!,
      service: service!,
      sha256: Sha256,
      applyChecksum: false,
    });
    const [, y, mo, d, h, mi, s] = date.map(Number);
    const resigned = await signer.sign(
      {
        method: req.method,
        protocol: 'http:',
        hostname: url.hostname,
        port: Number(url.port),
        path: url.pathname,
        query,
        headers,
        body,
      },
      { signingDate: new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!, s!)) },
    );
    const expected = /Signature=([0-9a-f]{64})/.exec(String(resigned.headers.authorization))?.[1];
    return expected !== undefined && same(expected, signature!) ? null : 'signature does not match';
  }

  return verify;
}

/**
 * Starts the upstream. It checks credentials with `verify` (shared with the long-lived servers), or
 * with a verifier of its own built from `idp` (as apps/broker/test/proxy.test.ts starts it).
 */
export async function startUpstream(
  deps: { issued: Issued; verify: Verifier } | { issued: Issued; idp: OidcFixture },
) {
  const verify =
    'verify' in deps
      ? deps.verify
      : createVerifier({ idp: deps.idp, issued: deps.issued, expiries: new TokenExpiries() });
  const counters = new Map<Strategy, { accepted: number; rejected: number }>();
  const rejections = new Map<Strategy, number>();

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? '127.0.0.1'}`);
    const strategy = url.pathname.split('/')[1] as Strategy;
    if (!(strategy in deps.issued)) return sendJson(res, 404, { error: 'unknown_strategy' });
    const count = counters.get(strategy) ?? { accepted: 0, rejected: 0 };
    counters.set(strategy, count);
    readBody(req)
      .then(async (body) => {
        const forced = rejections.get(strategy) ?? 0;
        if (forced > 0) rejections.set(strategy, forced - 1);
        const reason =
          forced > 0
            ? 'rejected on purpose (reject-next)'
            : await verify(strategy, { method: req.method ?? 'GET', url, headers: req.headers, body });
        if (reason !== null) {
          count.rejected += 1;
          return sendJson(
            res,
            401,
            { error: 'invalid_credential', reason },
            strategy === 'oauth2' ? { 'www-authenticate': 'Bearer error="invalid_token"' } : {},
          );
        }
        count.accepted += 1;
        sendJson(res, 200, {
          ok: true,
          strategy,
          method: req.method,
          path: url.pathname,
          body_sha256: createHash('sha256').update(body).digest('hex'),
        });
      })
      .catch((error: Error) => sendJson(res, 400, { error: 'bad_request', reason: error.message }));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    /** Every strategy, with zeros for those not called yet. */
    stats: () =>
      Object.fromEntries(
        Object.keys(deps.issued).map((k) => [k, counters.get(k as Strategy) ?? { accepted: 0, rejected: 0 }]),
      ),
    rejectNext(strategy: Strategy, count: number) {
      rejections.set(strategy, (rejections.get(strategy) ?? 0) + count);
    },
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
