import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import proxyAddr from '@fastify/proxy-addr';
import * as grpc from '@grpc/grpc-js';
import type { ServiceDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from 'pino';
import { envKeyMatcher } from '../auth/env-keys.ts';
import type { Container } from '../container.ts';
import { commonError } from '../errors/common.errors.ts';
import { NexusError } from '../errors/nexus-error.ts';
import { credentialFrom, credentialVerifier } from '../http/auth.ts';
import { credentialFamily } from '../http/credential-family.ts';
import { createCallLog } from '../http/logger.ts';
import { clientKey, type RateLimitBucket } from '../http/rate-limit.ts';
import { type CallOrigin, callerContext } from '../modules/audit/audit-context.ts';

const GRPC_RATE_LIMITED: Readonly<Record<string, RateLimitBucket>> = {
  RequestConnection: 'request_connection',
  GetToken: 'token',
  RefreshConnection: 'refresh',
};

import { asNexusError, createErrorMapper } from './errors.ts';
import { type Caller, type NexusHandler, nexusServiceHandlers } from './nexus.service.ts';
import { loadServiceDefinitions, loadStatusTypes, NEXUS_SERVICE_NAME } from './proto.ts';

/** A request message that did not decode (see `tolerant` below). */
const MALFORMED: object = Object.freeze({});

/** A caller's request id is kept when it is a plain token, as on REST (app.ts). */
const REQUEST_ID = /^[A-Za-z0-9._-]{8,128}$/;

/** Largest request message accepted: the REST body limit's default order of magnitude. */
const MAX_RECEIVE_BYTES = 1024 * 1024;
/** Calls in flight on one connection (HTTP/2 streams); grpc-js allows 2^32 - 1 by default. */
const MAX_CONCURRENT_STREAMS = 100;
/**
 * How long one connection lasts: every call is unary, so a stream older than this is one whose
 * message never came (headers sent, then nothing, never authenticated). Clients reconnect after
 * the GOAWAY without losing a call; the grace lets running calls finish.
 */
const MAX_CONNECTION_AGE_MS = 10 * 60_000;

export interface GrpcServer {
  /** Binds `host:port` (0: an ephemeral port) and serves; resolves to the bound port. */
  listen(host: string, port: number): Promise<number>;
  /** Reports NOT_SERVING, lets running calls finish (up to `graceMs`), then stops. */
  close(graceMs?: number): Promise<void>;
}

const firstValue = (metadata: grpc.Metadata, key: string): string | undefined => {
  const value = metadata.get(key)[0];
  return typeof value === 'string' ? value : undefined;
};

/** The socket address of the peer (`1.2.3.4:5678`, `::1:5678`), without its port. */
export function peerAddress(peer: string): string {
  const address = peer.replace(/:\d+$/, '');
  return address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
}

/**
 * The client's address as REST has it (Fastify's `request.ip`, same library and rule): the peer,
 * or, when the peer is one of `TRUSTED_PROXIES`, the furthest address of `x-forwarded-for`
 * reached through trusted proxies only. Used for ALLOWED_CIDRS, the rate limits and the audit.
 */
export function clientAddressOf(trustedProxies: readonly string[]) {
  const trust = trustedProxies.length === 0 ? undefined : proxyAddr.compile([...trustedProxies]);
  return (peer: string, metadata: grpc.Metadata): string => {
    const socketAddress = peerAddress(peer);
    if (trust === undefined) return socketAddress;
    const forwarded = metadata.get('x-forwarded-for').filter((v): v is string => typeof v === 'string');
    if (forwarded.length === 0) return socketAddress;
    const request = {
      headers: { 'x-forwarded-for': forwarded.join(',') },
      socket: { remoteAddress: socketAddress },
    };
    const addresses = proxyAddr.all(request as unknown as IncomingMessage, trust);
    return addresses[addresses.length - 1] ?? socketAddress;
  };
}

/**
 * The gRPC listener of `nexus serve`: `nexus.v1.NexusService` on the container's services,
 * `grpc.health.v1.Health` and server reflection. It has its own port: grpc-js serves HTTP/2 only
 * and cannot share Fastify's HTTP/1 listener (docs/decisions/0008).
 */
export function createGrpcServer(
  container: Container,
  logger: Logger,
  /** The gateway role: admin keys refused, as on a public-only HTTP listener (PUBLIC_LISTENER_ADMIN_KEYS). */
  options: { refuseAdminKeys?: boolean } = {},
): GrpcServer {
  const definitions = loadServiceDefinitions();
  const toFailure = createErrorMapper(loadStatusTypes());
  const verify = credentialVerifier({
    adminKeys: container.adminKeys,
    agents: container.agents,
    allowedCidrs: container.config.http.allowedCidrs,
  });
  const clientAddress = clientAddressOf(container.config.http.trustedProxies);
  // Refused credentials count as on REST (http/auth-failures.ts): a credential family that failed
  // too often at an address is refused there before it is checked (2026-12-08: gRPC let guesses
  // go on unlimited).
  const limiter = container.rateLimiter;
  const envKey = envKeyMatcher(container.config.apiKeys);
  const familyOf = (credential: string | undefined) =>
    limiter.enabled ? credentialFamily(credential, (c) => envKey(c)?.name) : undefined;
  const handlers = nexusServiceHandlers({
    consent: container.consent,
    connections: container.connections,
    sessions: container.sessions,
    agents: container.agents,
    onBehalfOf: container.onBehalfOf,
    maxTtlSeconds: container.config.agentSessionMaxTtlSeconds,
  });
  const { timeouts, bodyLimit } = container.config.http;
  const receiveLimit = Math.min(MAX_RECEIVE_BYTES, bodyLimit);
  // The REST listener's bounds on what a client may hold without sending (http/timeouts.ts): a
  // connection with no call closes after the keep-alive timeout, and no connection holds more
  // than MAX_CONCURRENT_STREAMS calls or lives past MAX_CONNECTION_AGE_MS (2026-12-07 review:
  // sockets and header-only streams were held for ever, without credentials).
  const server = new grpc.Server({
    'grpc.max_receive_message_length': receiveLimit,
    'grpc.max_send_message_length': 4 * MAX_RECEIVE_BYTES,
    'grpc.max_concurrent_streams': MAX_CONCURRENT_STREAMS,
    'grpc.max_connection_idle_ms': timeouts.keepAliveMs,
    'grpc.max_connection_age_ms': MAX_CONNECTION_AGE_MS,
    'grpc.max_connection_age_grace_ms': timeouts.requestMs,
  });
  const health = new HealthImplementation({ '': 'NOT_SERVING', [NEXUS_SERVICE_NAME]: 'NOT_SERVING' });
  health.addToServer(server);
  new ReflectionService(definitions).addToServer(server);

  const callLog = createCallLog(logger);
  /** One unary call: authenticate as REST does, run the handler, answer or map the error once. */
  const unary =
    (method: string, handler: NexusHandler): grpc.handleUnaryCall<unknown, object> =>
    (call, callback) => {
      const started = performance.now();
      const given = firstValue(call.metadata, 'x-request-id');
      const requestId = given !== undefined && REQUEST_ID.test(given) ? given : randomUUID();
      const ip = clientAddress(call.getPeer(), call.metadata);
      // The response headers go out with the answer (one write), not ahead of it (two).
      const sendHeaders = () => {
        const headers = new grpc.Metadata();
        headers.set('x-request-id', requestId);
        call.sendMetadata(headers);
      };
      // The call's origin, for the audit context REST builds the same way (modules/audit).
      const origin: CallOrigin = {
        ip,
        userAgent: firstValue(call.metadata, 'user-agent') ?? null,
        requestId,
      };
      const finish = (code: grpc.status, error?: ReturnType<typeof asNexusError>) => {
        const line = {
          grpc: { method, code: grpc.status[code] },
          request_id: requestId,
          ms: Math.round((performance.now() - started) * 100) / 100,
        };
        // A database outage refuses every call for a while: a warning each, as on REST, not a stack.
        if (error?.code === 'database_unavailable')
          logger.warn({ ...line, code: error.code, detail: error.detail }, 'database unavailable');
        else if (error !== undefined && error.status >= 500)
          logger.error(
            { ...line, err: error.cause ?? error, code: error.code, detail: error.detail },
            'call failed',
          );
        else if (error?.detail) logger.info({ ...line, detail: error.detail }, 'call completed');
        else callLog({ method, code: line.grpc.code as string, requestId, ms: line.ms });
      };
      (async () => {
        const credential = credentialFrom(
          firstValue(call.metadata, 'x-api-key'),
          firstValue(call.metadata, 'authorization'),
        );
        const family = familyOf(credential);
        if (family !== undefined) await limiter.refuseIfFailing(ip, family);
        const principal = await verify(credential, ip, 'agent').catch(async (error: unknown) => {
          if (family !== undefined && error instanceof NexusError && error.code === 'unauthorized')
            await limiter.recordFailure(ip, family);
          throw error;
        });
        if (family !== undefined) limiter.recordSuccess(family).catch(() => {});
        if (options.refuseAdminKeys && principal.kind === 'admin')
          throw commonError('forbidden', {
            message:
              'Admin keys are not accepted on the public listeners (gRPC among them): use an agent token here, or the admin listener (set PUBLIC_LISTENER_ADMIN_KEYS=true to allow them).',
          });
        // The same limits and counters as the REST routes of these calls (http/rate-limit.ts).
        const bucket = GRPC_RATE_LIMITED[method];
        if (bucket !== undefined) await container.rateLimiter.check(bucket, clientKey(principal, ip));
        const caller: Caller = { principal, ctx: callerContext(principal, origin) };
        if (call.request === MALFORMED)
          throw commonError('invalid_request', { message: 'The request message is not valid protobuf.' });
        return handler(caller, call.request);
      })().then(
        (response) => {
          sendHeaders();
          callback(null, response);
          finish(grpc.status.OK);
        },
        (thrown: unknown) => {
          const error = asNexusError(thrown);
          const failure = toFailure(error, requestId);
          sendHeaders();
          callback(failure);
          finish(failure.code, error);
        },
      );
    };

  const service = definitions[NEXUS_SERVICE_NAME] as ServiceDefinition | undefined;
  if (service === undefined) throw new Error(`${NEXUS_SERVICE_NAME} is not in the loaded .proto`);
  const implementation: grpc.UntypedServiceImplementation = {};
  // grpc-js answers INTERNAL to a message it cannot decode: the caller's fault is told as such,
  // after authentication, like any other bad request (2026-12-07 review).
  const tolerant: ServiceDefinition = {};
  for (const [method, definition] of Object.entries(service)) {
    const handler = handlers[method];
    if (handler === undefined) throw new Error(`no handler for ${NEXUS_SERVICE_NAME}/${method}`);
    implementation[method] = unary(method, handler);
    tolerant[method] = {
      ...definition,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return definition.requestDeserialize(bytes);
        } catch {
          return MALFORMED;
        }
      },
    };
  }
  server.addService(tolerant, implementation);

  return {
    listen(host, port) {
      const target = `${host.includes(':') ? `[${host}]` : host}:${port}`;
      return new Promise((resolve, reject) => {
        server.bindAsync(target, grpc.ServerCredentials.createInsecure(), (error, bound) => {
          if (error) return reject(error);
          health.setStatus('', 'SERVING');
          health.setStatus(NEXUS_SERVICE_NAME, 'SERVING');
          resolve(bound);
        });
      });
    },
    close(graceMs = 10_000) {
      health.setStatus('', 'NOT_SERVING');
      health.setStatus(NEXUS_SERVICE_NAME, 'NOT_SERVING');
      return new Promise((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}
