import type { FastifyInstance, FastifyRequest } from 'fastify';
import { envKeyMatcher } from '../auth/env-keys.ts';
import type { NamedApiKey } from '../config/load.ts';
import { presentedCredential } from './auth.ts';
import { type CredentialFamily, credentialFamily, LOGIN_ROUTES, loginFamily } from './credential-family.ts';
import { quickHook } from './quick-hook.ts';
import { clientKey, type RateLimiter, replyLimited } from './rate-limit.ts';

/** The credential family of each request that presented one to a protected or login route. */
const families = new WeakMap<FastifyRequest, CredentialFamily>();

/**
 * Guessing, or hammering with bad credentials: a request whose credential family failed too often
 * at its address in the window, or whose address did with families not known to be good, gets 429
 * before its credential is looked at (the rules are in rate-limit.ts, the families in
 * credential-family.ts). A family known to be good is never refused for failures, so a valid key
 * keeps working while others at the same address (behind one load balancer) fail.
 *
 * Public routes take no credential and are never refused here: `/health` and `/ready` answer
 * whatever an address did. `/oauth/token` is checked once its form body is parsed (the client's
 * credential is in it), and its login allowance (RATE_LIMIT_LOGIN_RPM) is per address and family.
 * Installed before authentication; a 401 counts as a failure (before it is sent), an authenticated
 * request or an issued token as a success. Counters are shared through Redis when it is configured.
 */
export function installAuthFailureLimit(
  app: FastifyInstance,
  limiter: RateLimiter,
  options: { envKeys: readonly NamedApiKey[] },
): void {
  if (!limiter.enabled) return;
  const envKey = envKeyMatcher(options.envKeys);
  const envKeyName = (credential: string) => envKey(credential)?.name;
  app.addHook(
    'onRequest',
    quickHook((request, reply) => {
      if (request.is404 || LOGIN_ROUTES.has(request.routeOptions.url ?? '')) return undefined;
      if ((request.routeOptions.config.auth ?? 'admin') === 'public') return undefined;
      const family = credentialFamily(presentedCredential(request), envKeyName);
      families.set(request, family);
      return limiter
        .refuseIfFailing(request.ip, family)
        .catch((error: unknown) => replyLimited(request, reply, error));
    }),
  );
  app.addHook(
    'preValidation',
    quickHook((request, reply) => {
      if (request.is404) return undefined;
      const login = LOGIN_ROUTES.has(request.routeOptions.url ?? '');
      // A route that authenticates OAuth clients itself, reached without a header credential: the
      // client's credential is in the form, as at /oauth/token (without its login allowance).
      const client = request.routeOptions.config.clientAuth === true && families.get(request) === 'none';
      if (!login && !client) return undefined;
      const family = loginFamily(request.headers.authorization, request.body, envKeyName);
      families.set(request, family);
      return (async () => {
        await limiter.refuseIfFailing(request.ip, family);
        if (login) await limiter.check('login', `${clientKey(undefined, request.ip)}|${family}`);
      })().catch((error: unknown) => replyLimited(request, reply, error));
    }),
  );
  // A failure is counted before its 401 leaves: a client that waits for each answer (one guesser,
  // or a test) never sees a broker that has not yet heard of its last failure.
  app.addHook('onSend', (request, reply, payload, done) => {
    const family = reply.statusCode === 401 ? families.get(request) : undefined;
    if (family === undefined) return done(null, payload);
    const send = () => done(null, payload);
    limiter.recordFailure(request.ip, family).then(send, send);
  });
  app.addHook(
    'onResponse',
    quickHook((request, reply) => {
      const family = families.get(request);
      if (family === undefined || reply.statusCode === 401) return undefined;
      if (
        request.principal !== undefined ||
        (reply.statusCode === 200 && LOGIN_ROUTES.has(request.routeOptions.url ?? ''))
      )
        return limiter.recordSuccess(family);
      return undefined;
    }),
  );
}
