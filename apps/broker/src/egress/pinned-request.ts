import http from 'node:http';
import https from 'node:https';
import { EgressError, type PinnedAddress, pinnedLookup } from './address-guard.ts';

export interface PinnedRequest {
  readonly method: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer | undefined;
  readonly signal: AbortSignal;
  /** A keep-alive pool whose sockets were all opened to checked addresses, or none (a fresh socket). */
  readonly agent: http.Agent | undefined;
  readonly maxResponseBytes: number;
  /** What a longer answer does: cut at the limit (`truncated`), or fail the request (`too_large`). */
  readonly overflow: 'truncate' | 'fail';
}

export interface PinnedAnswer {
  readonly status: number;
  readonly statusText: string;
  readonly headers: http.IncomingHttpHeaders;
  /** Name/value pairs as received, for a WHATWG `Headers`. */
  readonly rawHeaders: readonly string[];
  readonly body: Buffer;
  readonly truncated: boolean;
}

/**
 * One HTTP exchange with `url`, connected to `target` only (its address was checked by the guard;
 * TLS still verifies the certificate for the URL's host name). Resolves once the body is read.
 * Errors are the socket's own (with their `code`) or the signal's reason; a body over the limit
 * with `overflow: 'fail'` is an `EgressError('too_large')`.
 */
export function sendPinned(url: URL, target: PinnedAddress, request: PinnedRequest): Promise<PinnedAnswer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'user-agent': 'nexus-broker', ...request.headers };
    if (request.body !== undefined) headers['content-length'] = String(request.body.length);
    const transport = url.protocol === 'https:' ? https : http;
    const req = transport.request(
      url,
      {
        method: request.method,
        headers,
        agent: request.agent ?? false,
        signal: request.signal,
        lookup: pinnedLookup(target),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        let truncated = false;
        const finish = () =>
          resolve({
            status: res.statusCode ?? 0,
            statusText: res.statusMessage ?? '',
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            body: Buffer.concat(chunks),
            truncated,
          });
        res.on('data', (chunk: Buffer) => {
          if (truncated) return;
          const room = request.maxResponseBytes - size;
          if (chunk.length <= room) {
            chunks.push(chunk);
            size += chunk.length;
            return;
          }
          truncated = true;
          res.destroy();
          if (request.overflow === 'fail') {
            reject(
              new EgressError(
                'too_large',
                `${url.host} answered more than ${request.maxResponseBytes} bytes`,
              ),
            );
            return;
          }
          chunks.push(chunk.subarray(0, room));
          size = request.maxResponseBytes;
          finish();
        });
        res.on('end', finish);
        res.on('error', (error) => {
          if (!truncated) reject(error);
        });
      },
    );
    req.on('error', reject);
    req.end(request.body);
  });
}
