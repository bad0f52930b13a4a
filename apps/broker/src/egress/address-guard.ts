import { lookup as dnsLookup } from 'node:dns/promises';
import type http from 'node:http';
import { BlockList, isIP } from 'node:net';
import { cidrMatcher } from './cidr.ts';

/**
 * The address check every outbound client shares (see README.md in this folder): a URL's host is
 * resolved, every address it resolves to must be outside the special-purpose ranges or inside a
 * range the operator allowed, and the request then connects to the address that was checked.
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

/** Loopback, which identity-provider endpoints may reach outside production (a local provider). */
export const LOOPBACK_CIDRS: readonly string[] = ['127.0.0.0/8', '::1/128'];

/** Every address: for operator infrastructure whose address the operator configured (secret backends). */
export const ANY_ADDRESS: readonly string[] = ['0.0.0.0/0', '::/0'];

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

/** True when `address` (an IP literal) is in a special-purpose range; anything else counts as special. */
export function isSpecialAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return specialV4.check(address, 'ipv4');
  if (family === 6) return specialV6.check(address, 'ipv6');
  return true;
}

/**
 * Names that resolve to loopback by definition (RFC 6761 §6.3): `localhost` and `*.localhost`,
 * with or without the trailing dot of a fully qualified name.
 */
export function isLoopbackName(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
}

/** The host of a URL as an IP literal (IPv6 without brackets), or undefined for a name. */
export function literalHost(url: URL): string | undefined {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return isIP(host) === 0 ? undefined : host;
}

export type EgressFailure =
  | 'bad_url'
  | 'address_not_allowed'
  | 'dns_failed'
  | 'timeout'
  | 'too_many_redirects'
  | 'too_large'
  | 'network';

/**
 * Socket-style codes for failures before anything was sent. Callers that sort failures by whether
 * the request may have reached the server (the refresh, decision 0012) read `cause.code` the way
 * they read Node's own errors: the guard refusing an address is the broker refusing to connect.
 */
const CODES: Partial<Record<EgressFailure, string>> = {
  bad_url: 'ECONNREFUSED',
  address_not_allowed: 'ECONNREFUSED',
  dns_failed: 'ENOTFOUND',
};

/** Why an outbound request did not happen or did not finish. The message never holds request data. */
export class EgressError extends Error {
  readonly reason: EgressFailure;
  /** As on Node's socket errors: `ECONNREFUSED`/`ENOTFOUND` when nothing was sent, else the socket's code. */
  readonly code: string | undefined;
  constructor(reason: EgressFailure, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EgressError';
    this.reason = reason;
    const socketCode = (options.cause as { code?: unknown } | undefined)?.code;
    this.code = CODES[reason] ?? (typeof socketCode === 'string' ? socketCode : undefined);
  }

  /** True when the request certainly did not leave (refused, unresolvable or not a usable URL). */
  get beforeSending(): boolean {
    return this.reason === 'bad_url' || this.reason === 'address_not_allowed' || this.reason === 'dns_failed';
  }
}

export type Resolver = (hostname: string) => Promise<readonly { address: string; family: number }[]>;

const systemResolve: Resolver = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** An address a request may connect to: checked, and the only one it will connect to. */
export interface PinnedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/**
 * Resolves the host of a URL and refuses it unless every address is outside the special-purpose
 * ranges or inside `allowCidrs`. The answer is the address to connect to (see `pinnedLookup`).
 */
export function createAddressGuard(options: GuardOptions): (url: URL) => Promise<PinnedAddress> {
  const check = createHostGuard(options);
  return (url) => {
    // The WHATWG parser has already turned decimal, octal, hex and short IPv4 forms into dotted quads.
    const literal = literalHost(url);
    return check(literal ?? url.hostname);
  };
}

export interface GuardOptions {
  /** Ranges allowed despite being special (`NEXUS_EGRESS_ALLOWED_CIDRS`, loopback in development). */
  readonly allowCidrs: readonly string[];
  /** Resolver, replaceable in tests; the default is the system resolver (`getaddrinfo`). */
  readonly resolve?: Resolver | undefined;
}

/** `createAddressGuard` for a host name or IP literal (IPv6 without brackets). */
export function createHostGuard(options: GuardOptions): (host: string) => Promise<PinnedAddress> {
  const allowed = cidrMatcher(options.allowCidrs);
  const resolve = options.resolve ?? systemResolve;
  const permitted = (address: string) => allowed(address) || !isSpecialAddress(address);

  return async (host) => {
    const family = isIP(host);
    if (family !== 0) {
      if (!permitted(host))
        throw new EgressError('address_not_allowed', `${host} is a private or special-purpose address`);
      return { address: host, family: family as 4 | 6 };
    }
    let found: readonly { address: string; family: number }[];
    try {
      found = await resolve(host);
    } catch (cause) {
      throw new EgressError('dns_failed', `${host} could not be resolved`, { cause });
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

/**
 * A socket `lookup` (net.connect, undici's `connect` options) that checks the name as
 * `createHostGuard` does and connects to the checked address: for pools, whose sockets are then
 * all opened to checked addresses. Node never calls a lookup for an IP literal: check those before
 * sending (`createAddressGuard`).
 */
export function guardedLookup(
  check: (host: string) => Promise<PinnedAddress>,
): http.RequestOptions['lookup'] {
  return (host, opts, callback) => {
    check(host).then(
      (target) => pinnedLookup(target)!(host, opts, callback),
      (error: Error) => (callback as (e: Error) => void)(error),
    );
  };
}

/** A `lookup` for http.request that answers the checked address (no second lookup to rebind). */
export function pinnedLookup(target: PinnedAddress): http.RequestOptions['lookup'] {
  return (_host, opts, callback) => {
    if ((opts as { all?: boolean }).all) callback(null, [target]);
    else (callback as (e: null, a: string, f: number) => void)(null, target.address, target.family);
  };
}
