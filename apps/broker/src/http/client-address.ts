import { isIPv4, isIPv6 } from 'node:net';
import type { FastifyInstance } from 'fastify';

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

/**
 * The address a client is counted under by the rate limits and the failed-authentication limit.
 * One IPv6 host is normally given a whole /64 network (RFC 4291 interface identifiers; SLAAC and
 * privacy addresses rotate inside it), so counting each IPv6 address apart would let one client
 * reset its counters by changing address: an IPv6 address counts as its /64
 * (`2001:db8:1:2::/64`). An IPv4 address, or one mapped into IPv6 (`::ffff:192.0.2.1`), counts as
 * itself. Anything else (an in-process request has no address) is returned as it is.
 */
export function addressKey(ip: string): string {
  if (!ip.includes(':')) return ip;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped !== null && isIPv4(mapped[1]!)) return mapped[1]!;
  const address = ip.replace(/%.*$/, '');
  if (!isIPv6(address)) return ip;
  const [head = '', tail] = address.split('::') as [string, string | undefined];
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  // An IPv4 tail (`64:ff9b::192.0.2.1`) stands for two groups, all past the /64.
  const right = groups(tail ?? '').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g]));
  const all =
    tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  const prefix = all.slice(0, 4).map((g) => Number.parseInt(g, 16).toString(16));
  return `${prefix.join(':')}::/64`;
}
