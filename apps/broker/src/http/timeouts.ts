import type { Server } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';

/**
 * How long a client may take to send a request, and to keep an idle connection. Without these a
 * client that sends half a body holds its connection (and a slot of the balancer's pool) for Node's
 * default of 300 s, on public routes too.
 */
export interface HttpTimeouts {
  /** Receiving a request's headers (Node's `headersTimeout`). */
  readonly headersMs: number;
  /**
   * Receiving a request's body once its headers are in. On the credential proxy (uploads of up to
   * NEXUS_PROXY_BODY_LIMIT_BYTES) it is the longest pause in the upload instead, for an
   * authenticated caller: a long upload is not cut while it moves.
   */
  readonly requestMs: number;
  /** How long an idle keep-alive connection stays open (Node's `keepAliveTimeout`). */
  readonly keepAliveMs: number;
}

/** Sets Node's listener timeouts; call before the server listens. */
export function applyServerTimeouts(server: Server, timeouts: HttpTimeouts): void {
  server.headersTimeout = timeouts.headersMs;
  // The body is bounded per route by installBodyDeadline. Node's requestTimeout covers the whole
  // request, body included, on every route alike: it would cut a proxied upload that is moving.
  server.requestTimeout = 0;
  server.keepAliveTimeout = timeouts.keepAliveMs;
  // No idle-socket timeout (Fastify's connectionTimeout): it would also cut a quiet answer that
  // streams (server-sent events through the proxy), which has no deadline by design.
  server.setTimeout(0);
  // Node checks headersTimeout every connectionsCheckingInterval (30 s by default), so a 10 s
  // limit could take 40 s; it reads the interval when the server starts listening.
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = Math.min(
    1_000,
    timeouts.headersMs,
  );
}

/** What Node itself answers when its request timeout expires (http/_http_server.js). */
const REQUEST_TIMEOUT_RESPONSE = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n';

const hasBody = (request: FastifyRequest) =>
  request.headers['transfer-encoding'] !== undefined ||
  (request.headers['content-length'] !== undefined && request.headers['content-length'] !== '0');

/**
 * Bounds receiving request bodies: `requestMs` from the end of the headers, after which the
 * connection gets 408 (when nothing was answered yet) and is closed. On `streamingRoutes` (the
 * credential proxy), once the caller is authenticated, the bound becomes the longest pause in the
 * upload. An answer sent before its request's body has arrived closes the connection after it,
 * instead of reading the rest of a body nobody wants.
 */
export function installBodyDeadline(
  app: FastifyInstance,
  timeouts: HttpTimeouts,
  streamingRoutes: ReadonlySet<string>,
): void {
  const deadlines = new WeakMap<FastifyRequest, () => void>();
  app.addHook('onRequest', (request, reply, done) => {
    const raw = request.raw;
    if (raw.complete || !hasBody(request)) return done();
    const timer = setTimeout(() => {
      const socket = raw.socket;
      if (raw.complete || socket.destroyed) return;
      request.log.info(
        { timeout_ms: timeouts.requestMs },
        'request body not received in time: connection closed',
      );
      if (!reply.raw.headersSent && socket.writable) socket.write(REQUEST_TIMEOUT_RESPONSE);
      socket.destroy();
    }, timeouts.requestMs);
    timer.unref();
    const stop = () => {
      clearTimeout(timer);
      raw.off('end', stop);
      raw.off('close', stop);
    };
    raw.once('end', stop);
    raw.once('close', stop);
    deadlines.set(request, stop);
    done();
  });
  app.addHook('preHandler', (request, _reply, done) => {
    const stop = deadlines.get(request);
    if (stop === undefined || request.principal === undefined) return done();
    if (!streamingRoutes.has(request.routeOptions.url ?? '')) return done();
    stop();
    const raw = request.raw;
    const socket = raw.socket;
    // An in-process request (app.inject: the MCP http_request tool's proxy call) has no socket to pause.
    if (raw.complete || socket.destroyed || typeof socket.setTimeout !== 'function') return done();
    // Any byte in either direction restarts it; the answer (which may stream for long) starts
    // after the body, when the pause limit is lifted again.
    const idle = () => {
      if (!raw.complete) socket.destroy();
    };
    const lift = () => {
      socket.setTimeout(0);
      socket.off('timeout', idle);
      raw.off('end', lift);
      raw.off('close', lift);
    };
    socket.on('timeout', idle);
    socket.setTimeout(timeouts.requestMs);
    raw.once('end', lift);
    raw.once('close', lift);
    done();
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    if (!request.raw.complete && hasBody(request)) reply.header('connection', 'close');
    done(null, payload);
  });
  // Answered: a body still arriving is cut by the connection's close (onSend), not by the timer.
  app.addHook('onResponse', (request, _reply, done) => {
    deadlines.get(request)?.();
    done();
  });
}
