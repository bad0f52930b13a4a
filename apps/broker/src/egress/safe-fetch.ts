import { lookup as dnsLookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP } from 'node:net';
import { cidrMatcher } from '../http/client-address.ts';

/**
 * An outbound HTTP client for URLs that are not fully trusted (a probe of credentials a user just
 * typed, later the credential proxy): it refuses private, loopback, link-local and other special
 * addresses after DNS resolution and again on every redirect, unless the operator allows the
 * address; it connects to the very address it checked (no second lookup to rebind); it never
 * pools or caches; it bounds time, redirects and the size of what it reads.
 */

/** Special-purpose ranges (RFC 6890 and successors) an untrusted URL may never reach by default. */
const SPECIAL_IPV4 = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
];
/** IPv6 ranges; the ones that embed an IPv4 address (mapped, compatible, NAT64, 6to4) are refused whole. */
const SPECIAL_IPV6 = [
  '::/96',
  '::ffff:0:0/96',
  '64:ff9b::/96',
  '64:ff9b:1::/48',
  '100::/64',
  '2001::/23',
  '2001:db8::/32',
  '2002::/16',
  'fc00::/7',
  'fe80::/10',
  'fec0::/10',
  'ff00::/8',
];

// One list per family: a BlockList also matches IPv4 addresses against IPv4-mapped IPv6 rules.
const specialV4 = new BlockList();
for (const range of SPECIAL_IPV4) {
  const [addr, bits] = range.split('/') as [string, string];
  specialV4.addSubnet(addr, Number(bits), 'ipv4');
}
const specialV6 = new BlockList();
for (const range of SPECIAL_IPV6) {
  const [addr, bits] = range.split('/') as [string, string];
  specialV6.addSubnet(addr, Number(bits), 'ipv6');
}

/** True when `address` (an IP literal) is in a special-purpose range. */
export function isSpecialAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return specialV4.check(address, 'ipv4');
  if (family === 6) return specialV6.check(address, 'ipv6');
  return true;
}

export type EgressFailure =
  | 'bad_url'
  | 'address_not_allowed'
  | 'dns_failed'
  | 'timeout'
  | 'too_many_redirects'
  | 'network';

/** Why an outbound request did not happen or did not finish. The message never holds request data. */
export class EgressError extends Error {
  readonly reason: EgressFailure;
  constructor(reason: EgressFailure, message: string) {
    super(message);
    this.name = 'EgressError';
    this.reason = reason;
  }
}

export interface SafeRequest {
  readonly method?: 'GET' | 'HEAD' | 'POST';
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

export interface SafeResponse {
  readonly status: number;
  /** The URL that answered, after redirects. */
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** At most `maxResponseBytes`; longer bodies are cut (and `truncated` says so). */
  readonly body: Buffer;
  readonly truncated: boolean;
}

export interface SafeFetchOptions {
  /** CIDR ranges the operator allows despite being special (e.g. `127.0.0.1/32` for a local API). */
  readonly allowCidrs: readonly string[];
  readonly timeoutMs: number;
  readonly maxRedirects?: number;
  readonly maxResponseBytes?: number;
  /** Resolver, replaceable in tests; the default is the system resolver (`getaddrinfo`). */
  readonly resolve?: (hostname: string) => Promise<readonly { address: string; family: number }[]>;
}

export type SafeFetch = (url: string, request?: SafeRequest) => Promise<SafeResponse>;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

const systemResolve = (hostname: string) => dnsLookup(hostname, { all: true, verbatim: true });

/** An address a request may connect to: checked, and the only one it will connect to. */
export interface PinnedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/**
 * The egress check shared by every outbound client for untrusted URLs: resolves the host and
 * refuses it unless every address is outside the special-purpose ranges or inside `allowCidrs`.
 */
export function createAddressGuard(
  options: Pick<SafeFetchOptions, 'allowCidrs' | 'resolve'>,
): (url: URL) => Promise<PinnedAddress> {
  const allowed = cidrMatcher(options.allowCidrs);
  const resolve = options.resolve ?? systemResolve;
  const permitted = (address: string) => allowed(address) || !isSpecialAddress(address);

  return async (url) => {
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const literal = isIP(host);
    if (literal !== 0) {
      if (!permitted(host))
        throw new EgressError('address_not_allowed', `${host} is a private or special-purpose address`);
      return { address: host, family: literal as 4 | 6 };
    }
    let found: readonly { address: string; family: number }[];
    try {
      found = await resolve(host);
    } catch {
      throw new EgressError('dns_failed', `${host} could not be resolved`);
    }
    if (found.length === 0) throw new EgressError('dns_failed', `${host} could not be resolved`);
    // Every answer must be acceptable: a name that also points inside the network is refused whole.
    const refused = found.find((a) => !permitted(a.address));
    if (refused !== undefined)
      throw new EgressError(
        'address_not_allowed',
        `${host} resolves to ${refused.address}, a private or special-purpose address`,
      );
    const first = found[0]!;
    return { address: first.address, family: first.family === 6 ? 6 : 4 };
  };
}

/** A `lookup` for http.request that answers the checked address (no second lookup to rebind). */
export function pinnedLookup(target: PinnedAddress): http.RequestOptions['lookup'] {
  return (_host, opts, callback) => {
    if ((opts as { all?: boolean }).all) callback(null, [target]);
    else (callback as (e: null, a: string, f: number) => void)(null, target.address, target.family);
  };
}

export function createSafeFetch(options: SafeFetchOptions): SafeFetch {
  const maxRedirects = options.maxRedirects ?? 3;
  const maxBytes = options.maxResponseBytes ?? 64 * 1024;
  const addressFor = createAddressGuard(options);

  function once(
    url: URL,
    target: PinnedAddress,
    request: SafeRequest,
    signal: AbortSignal,
  ): Promise<SafeResponse & { location?: string }> {
    return new Promise((resolvePromise, reject) => {
      const body = request.body === undefined ? undefined : Buffer.from(request.body);
      const headers: Record<string, string> = { 'user-agent': 'nexus-broker', ...request.headers };
      if (body !== undefined) headers['content-length'] = String(body.length);
      const transport = url.protocol === 'https:' ? https : http;
      const req = transport.request(
        url,
        {
          method: request.method ?? 'GET',
          headers,
          agent: false,
          signal,
          // Connect to the checked address; TLS still verifies the certificate for the host name.
          lookup: pinnedLookup(target),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          let truncated = false;
          const finish = () =>
            resolvePromise({
              status: res.statusCode ?? 0,
              url: url.href,
              headers: res.headers,
              body: Buffer.concat(chunks),
              truncated,
              ...(res.headers.location === undefined ? {} : { location: res.headers.location }),
            });
          res.on('data', (chunk: Buffer) => {
            if (truncated) return;
            const room = maxBytes - size;
            if (chunk.length > room) {
              chunks.push(chunk.subarray(0, room));
              size = maxBytes;
              truncated = true;
              res.destroy();
              finish();
              return;
            }
            chunks.push(chunk);
            size += chunk.length;
          });
          res.on('end', finish);
          res.on('error', (error) => {
            if (!truncated) reject(error);
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  return async (href, request = {}) => {
    let url: URL;
    try {
      url = new URL(href);
    } catch {
      throw new EgressError('bad_url', 'not an absolute URL');
    }
    const signal = AbortSignal.timeout(options.timeoutMs);
    let current = request;
    for (let hop = 0; ; hop++) {
      if (url.protocol !== 'https:' && url.protocol !== 'http:')
        throw new EgressError('bad_url', `${url.protocol} URLs are not fetched`);
      if (url.username !== '' || url.password !== '')
        throw new EgressError('bad_url', 'URLs with embedded credentials are not fetched');
      let response: SafeResponse & { location?: string };
      try {
        const target = await addressFor(url);
        if (signal.aborted) throw signal.reason;
        response = await once(url, target, current, signal);
      } catch (error) {
        if (error instanceof EgressError) throw error;
        if (signal.aborted) throw new EgressError('timeout', `no answer from ${url.host} in time`);
        throw new EgressError('network', `${url.host} could not be reached`);
      }
      if (!REDIRECTS.has(response.status) || response.location === undefined) {
        const { location: _, ...rest } = response;
        return rest;
      }
      if (hop >= maxRedirects)
        throw new EgressError('too_many_redirects', `more than ${maxRedirects} redirects`);
      let next: URL;
      try {
        next = new URL(response.location, url);
      } catch {
        throw new EgressError('bad_url', 'the redirect target is not a URL');
      }
      // Like browsers: 303, and 301/302 after a POST, become GET without a body; credentials the
      // caller attached never follow the request to another origin.
      const toGet = response.status === 303 || (current.method === 'POST' && response.status < 303);
      current = {
        ...(toGet ? { method: 'GET' as const } : { method: current.method ?? 'GET', body: current.body }),
        headers: next.origin === url.origin ? current.headers : {},
      };
      url = next;
    }
  };
}
