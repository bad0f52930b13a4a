/**
 * The testbed's gRPC server (grpc-js): the standard `grpc.health.v1.Health` service, whose every call
 * must carry in its metadata the credential its strategy applies (oauth2 `authorization: Bearer …`,
 * header `x-api-key`, basic_auth `authorization: Basic …`), checked by the same verifier as the HTTP
 * upstream (for oauth2: the provider's userinfo endpoint). A wrong one ends the call UNAUTHENTICATED.
 *
 * The request's `service` field says `{strategy}/{label}` (the label names the counters, as the
 * WebSocket path does). `Check` answers SERVING; `Watch` sends SERVING once and stays open until the
 * client cancels it or its credential stops passing, when it ends UNAUTHENTICATED (sessions.ts): that
 * is how a long-lived stream sees a token expire or a grant revoked.
 *
 * Connections are accepted by the testbed's own TCP listener and handed to grpc-js
 * (`createConnectionInjector`), so the control API can count and drop them.
 */
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { credentialFingerprint, type Session, SessionBook } from './sessions.ts';
import type { CheckedRequest, Strategy, TokenExpiries, Verifier } from './upstream.ts';

interface HealthRequest {
  service?: string;
}
interface HealthResponse {
  status: 'SERVING';
}

export interface GrpcLabelStats {
  calls: { accepted: number; rejected: number };
  watches: { started: number; open: number };
  /** Watch streams the server ended UNAUTHENTICATED because their credential stopped passing. */
  unauthorized: number;
  /** Distinct TCP connections that carried calls of this label. */
  connections: number;
  /** Distinct credentials presented. */
  credentials: number;
}

interface WatchSession extends Session {
  readonly socket: string;
}

export async function startGrpcServer(deps: {
  strategies: readonly Strategy[];
  verify: Verifier;
  expiries: TokenExpiries;
}) {
  const stats = new Map<string, GrpcLabelStats & { seenSockets: Set<string>; seen: Set<string> }>();
  const statsOf = (label: string) => {
    let s = stats.get(label);
    if (s === undefined) {
      s = {
        calls: { accepted: 0, rejected: 0 },
        watches: { started: 0, open: 0 },
        unauthorized: 0,
        connections: 0,
        credentials: 0,
        seenSockets: new Set(),
        seen: new Set(),
      };
      stats.set(label, s);
    }
    return s;
  };
  const book = new SessionBook<WatchSession>(deps.verify, deps.expiries, (s) => {
    statsOf(s.label).unauthorized += 1;
  });
  /** Open TCP connections by `address:port` of the client, and the labels each carried. */
  const sockets = new Map<string, { socket: Socket; labels: Set<string> }>();
  let refuseConnections = 0;
  let accepted = 0;

  /** Checks a call; resolves to its label and request, or rejects with a gRPC status. */
  async function admit(
    call:
      | grpc.ServerUnaryCall<HealthRequest, HealthResponse>
      | grpc.ServerWritableStream<HealthRequest, HealthResponse>,
  ) {
    const [first = '', ...rest] = String(call.request.service ?? '').split('/');
    const strategy = first as Strategy;
    const label = rest.join('/') || 'default';
    const s = statsOf(label);
    // The client's address:port, as the listener below keys its sockets.
    const key = call.getPeer();
    sockets.get(key)?.labels.add(label);
    s.seenSockets.add(key);
    s.connections = s.seenSockets.size;
    if (!deps.strategies.includes(strategy)) {
      s.calls.rejected += 1;
      throw { code: grpc.status.INVALID_ARGUMENT, details: 'service must be {strategy}/{label}' };
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(call.metadata.getMap())) if (typeof v === 'string') headers[k] = v;
    const request: CheckedRequest = {
      method: 'POST',
      url: new URL(`http://grpc.invalid${call.getPath()}`),
      headers,
      body: Buffer.alloc(0),
    };
    const reason = await deps.verify(strategy, request).catch((e: Error) => e.message);
    if (reason !== null) {
      s.calls.rejected += 1;
      throw { code: grpc.status.UNAUTHENTICATED, details: reason };
    }
    s.calls.accepted += 1;
    s.seen.add(credentialFingerprint(request));
    s.credentials = s.seen.size;
    return { label, strategy, request, socket: key };
  }

  const server = new grpc.Server();
  server.addService(healthService, {
    check: (
      call: grpc.ServerUnaryCall<HealthRequest, HealthResponse>,
      callback: grpc.sendUnaryData<HealthResponse>,
    ) => {
      admit(call).then(
        () => callback(null, { status: 'SERVING' }),
        (status: grpc.ServiceError) => callback(status),
      );
    },
    watch: (call: grpc.ServerWritableStream<HealthRequest, HealthResponse>) => {
      admit(call).then(
        ({ label, strategy, request, socket }) => {
          const s = statsOf(label);
          const session: WatchSession = {
            label,
            strategy,
            request,
            socket,
            endUnauthorized: (reason) =>
              call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: reason }),
          };
          s.watches.started += 1;
          s.watches.open += 1;
          let ended = false;
          const end = () => {
            if (ended) return;
            ended = true;
            s.watches.open -= 1;
            book.remove(session);
          };
          call.on('cancelled', end);
          call.on('close', end);
          call.on('error', end);
          book.add(session);
          call.write({ status: 'SERVING' });
        },
        (status: grpc.ServiceError) => call.emit('error', status),
      );
    },
  });
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());

  const listener: NetServer = createServer((socket: Socket) => {
    if (refuseConnections > 0) {
      refuseConnections -= 1;
      socket.destroy();
      return;
    }
    accepted += 1;
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    sockets.set(key, { socket, labels: new Set() });
    socket.on('close', () => sockets.delete(key));
    socket.on('error', () => socket.destroy());
    injector.injectConnection(socket);
  });
  await new Promise<void>((done) => listener.listen(0, '127.0.0.1', done));
  const address = listener.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;

  return {
    /** host:port for grpc.NewClient / new grpc.Client (plaintext, HTTP/2 with prior knowledge). */
    target: `127.0.0.1:${port}`,
    stats: () => ({
      accepted_connections: accepted,
      labels: Object.fromEntries(
        [...stats].map(([label, { seenSockets: _a, seen: _b, ...s }]) => [label, s]),
      ) as Record<string, GrpcLabelStats>,
    }),
    /** Destroys the TCP connections that carried calls of `label` (all when absent): resolves to how many. */
    drop(options: { label?: string }): number {
      let n = 0;
      for (const { socket, labels } of sockets.values()) {
        if (options.label !== undefined && !labels.has(options.label)) continue;
        socket.destroy();
        n += 1;
      }
      return n;
    },
    /** The next `count` TCP connections are closed as soon as they are accepted. */
    refuseNext(count: number) {
      refuseConnections = count;
    },
    recheck: () => book.recheck(),
    close: () =>
      new Promise<void>((done) => {
        book.closeAll();
        injector.destroy();
        for (const { socket } of sockets.values()) socket.destroy();
        server.forceShutdown();
        listener.close(() => done());
      }),
  };
}
