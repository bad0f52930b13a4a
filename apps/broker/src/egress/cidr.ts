import { BlockList, isIP } from 'node:net';

/**
 * Builds a matcher for CIDR ranges (IPv4 and IPv6; an IPv4-mapped IPv6 address matches its IPv4
 * range). The one CIDR matcher: the egress guard's allowed ranges (address-guard.ts), the
 * identity-provider and loopback rules (endpoint-rules.ts) and the operators' client allow-list
 * (`ALLOWED_CIDRS`, http/auth.ts) all use it.
 */
export function cidrMatcher(ranges: readonly string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const range of ranges) {
    const [addr, prefix] = range.split('/') as [string, string | undefined];
    const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    const bits = prefix === undefined ? (family === 'ipv6' ? 128 : 32) : Number(prefix);
    list.addSubnet(addr, bits, family);
  }
  return (address) => {
    const mapped = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    const family = isIP(mapped);
    if (family === 0) return false;
    return list.check(mapped, family === 6 ? 'ipv6' : 'ipv4');
  };
}
