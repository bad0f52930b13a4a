import { isIPv4 } from 'node:net';

/**
 * How much of the address space a `TRUSTED_PROXIES` range hands to whoever sends from it:
 * a range that trusts more than a /8 of IPv4 (or a /16 of IPv6) is not a proxy fleet, and lets
 * clients inside it set `X-Forwarded-For` to any address (past `ALLOWED_CIDRS`, past the rate
 * limits). IPv6 ranges that reach into the IPv4-mapped block (`::ffff:0:0/96`) are judged by the
 * IPv4 addresses they cover, since the proxy-address library matches IPv4 peers against them.
 * Cloudflare's widest published ranges (a /13 of IPv4, a /29 of IPv6) pass, and so do IPv6's
 * private ranges whatever their size, as 10.0.0.0/8 does.
 */
const MIN_V4_PREFIX = 8;
const MIN_V6_PREFIX = 16;

/** The 128-bit value of an IPv6 address (`::`, embedded IPv4 and zone-less forms). */
function v6Value(address: string): bigint {
  let text = address;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted !== null) {
    const [a, b, c, d] = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, -dotted[1]!.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((value, group) => (value << 16n) | BigInt(Number.parseInt(group, 16)), 0n);
}

const MAPPED = 0xffffn << 32n; // ::ffff:0:0

/** A problem with `range` (already known to be a valid address or CIDR), or undefined. */
export function proxyRangeTooBroad(address: string, bits: number): string | undefined {
  if (isIPv4(address))
    return bits < MIN_V4_PREFIX ? `a /${bits} range (more than a /${MIN_V4_PREFIX} of IPv4)` : undefined;
  // The range's first address, and whether it reaches into the IPv4-mapped block.
  const start =
    v6Value(address) & (bits === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - bits)) - 1n));
  const reachesMapped =
    bits <= 96 ? start === (MAPPED >> BigInt(128 - bits)) << BigInt(128 - bits) : start >> 32n === 0xffffn;
  if (reachesMapped && Math.max(bits, 96) - 96 < MIN_V4_PREFIX)
    return `a range that covers IPv4-mapped addresses as a /${Math.max(bits, 96) - 96} of IPv4`;
  // Unique-local (fc00::/7) and link-local (fe80::/10) addresses never come from the internet.
  const local = (bits >= 7 && start >> 121n === 0x7en) || (bits >= 10 && start >> 118n === 0x3fan);
  return bits < MIN_V6_PREFIX && !local
    ? `a /${bits} range (more than a /${MIN_V6_PREFIX} of IPv6)`
    : undefined;
}
