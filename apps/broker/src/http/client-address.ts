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
