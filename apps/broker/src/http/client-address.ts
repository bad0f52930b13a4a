import { BlockList, isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';

/** Builds a matcher for CIDR ranges (IPv4 and IPv6; an IPv4-mapped IPv6 address matches its IPv4 range). */
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

/** Headers a reverse proxy adds; believed only from TRUSTED_PROXIES. */
const FORWARDING_HEADERS = ['x-forwarded-for', 'forwarded', 'x-real-ip'] as const;

/**
 * Without TRUSTED_PROXIES, a broker behind a load balancer sees one client address, the balancer's:
 * rate limits and the failed-authentication limit then count every client behind it together. The
 * first request that carries a forwarding header says so in the log, once per process.
 */
export function warnUntrustedForwarding(app: FastifyInstance, trustedProxies: readonly string[]): void {
  if (trustedProxies.length > 0) return;
  let warned = false;
  app.addHook('onRequest', (request, _reply, done) => {
    if (!warned && FORWARDING_HEADERS.some((name) => request.headers[name] !== undefined)) {
      warned = true;
      app.log.warn(
        { peer: request.socket.remoteAddress },
        "a request came through a proxy (X-Forwarded-For) but TRUSTED_PROXIES is unset: every client behind it has the proxy's address, and rate limits count them as one client; list the proxy in TRUSTED_PROXIES",
      );
    }
    done();
  });
}
