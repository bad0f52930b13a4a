/**
 * The testbed's WebSocket server (`ws`): `ws://…/{strategy}/{label}` accepts the upgrade only when the
 * handshake carries the credential that strategy applies, checked by the same verifier as the HTTP
 * upstream (for oauth2: the provider's userinfo endpoint). A wrong credential gets `401` and no upgrade.
 *
 * Once open, a session:
 * - receives `{"type":"welcome","session":N,"strategy":…}`;
 * - gets every message echoed back (text as text, binary as binary), except two JSON commands:
 *   `{"type":"reauth","headers":{…}}` re-authenticates in band with the headers a handshake would
 *   carry (answer `{"type":"reauth_ok"}`, or close 3000 when refused), and `{"type":"blob","bytes":N}`
 *   makes the server send one binary message of N bytes (size-limit tests);
 * - answers pings with pongs, unless muted by the control API;
 * - is closed with 3000 ("Unauthorized" in the IANA close-code registry) when its credential stops
 *   passing: its testbed expiry passed, or the control API revoked or expired it (sessions.ts).
 */
import { createServer, type IncomingMessage, STATUS_CODES } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import { credentialFingerprint, type Session, SessionBook } from './sessions.ts';
import {
  type CheckedRequest,
  type Strategy,
  sendJson,
  type TokenExpiries,
  type Verifier,
} from './upstream.ts';

/** Close code for a credential that stopped passing (IANA WebSocket close code registry: Unauthorized). */
export const CLOSE_UNAUTHORIZED = 3000;
const MAX_MESSAGE = 16 * 1024 * 1024;
const KEEP_HANDSHAKES = 100;

interface WsSession extends Session {
  readonly id: number;
  readonly ws: WebSocket;
  muted: boolean;
}

export interface WsLabelStats {
  /** Every upgrade request: when (epoch ms) and the status answered (101 when upgraded). */
  handshakes: { at: number; status: number }[];
  opened: number;
  open: number;
  /** Close codes of ended sessions (1006: the TCP connection ended without a close frame). */
  closed: Record<string, number>;
  messages: number;
  pings: number;
  reauth_ok: number;
  reauth_refused: number;
  /** Sessions the server closed with 3000 because their credential stopped passing. */
  unauthorized: number;
  /** Distinct credentials the label's sessions presented (handshakes and re-auths). */
  credentials: number;
}

export async function startWsServer(deps: {
  strategies: readonly Strategy[];
  verify: Verifier;
  expiries: TokenExpiries;
}) {
  const stats = new Map<string, WsLabelStats & { seen: Set<string> }>();
  const statsOf = (label: string) => {
    let s = stats.get(label);
    if (s === undefined) {
      s = {
        handshakes: [],
        opened: 0,
        open: 0,
        closed: {},
        messages: 0,
        pings: 0,
        reauth_ok: 0,
        reauth_refused: 0,
        unauthorized: 0,
        credentials: 0,
        seen: new Set(),
      };
      stats.set(label, s);
    }
    return s;
  };
  const sawCredential = (label: string, req: CheckedRequest) => {
    const s = statsOf(label);
    s.seen.add(credentialFingerprint(req));
    s.credentials = s.seen.size;
  };
  /** Handshakes to refuse next, per label ('*': any label): how many, with which status. */
  const refusals = new Map<string, { count: number; status: number }>();
  const book = new SessionBook<WsSession>(deps.verify, deps.expiries, (s) => {
    statsOf(s.label).unauthorized += 1;
  });
  const wss = new WebSocketServer({ noServer: true, autoPong: false, maxPayload: MAX_MESSAGE });
  const sockets = new Set<Socket>();
  let nextId = 0;

  const server = createServer((_req, res) => sendJson(res, 426, { error: 'upgrade_required' }));
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  const refuse = (socket: Socket, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = JSON.stringify(body);
    const lines = [
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
      'Content-Type: application/json',
      `Content-Length: ${Buffer.byteLength(text)}`,
      'Connection: close',
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ];
    socket.end(`${lines.join('\r\n')}\r\n\r\n${text}`);
  };

  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? '127.0.0.1'}`);
    const [, first = '', ...rest] = url.pathname.split('/');
    const strategy = first as Strategy;
    const label = decodeURIComponent(rest.join('/')) || 'default';
    const s = statsOf(label);
    const record = (status: number) => {
      s.handshakes.push({ at: Date.now(), status });
      if (s.handshakes.length > KEEP_HANDSHAKES) s.handshakes.shift();
    };
    if (!deps.strategies.includes(strategy)) {
      record(404);
      return refuse(socket, 404, { error: 'unknown_strategy' });
    }
    const refusal = refusals.get(label) ?? refusals.get('*');
    if (refusal !== undefined && refusal.count > 0) {
      refusal.count -= 1;
      record(refusal.status);
      return refuse(socket, refusal.status, { error: 'refused_on_purpose' });
    }
    const checked: CheckedRequest = {
      method: req.method ?? 'GET',
      url,
      headers: req.headers,
      body: Buffer.alloc(0),
    };
    deps.verify(strategy, checked).then(
      (reason) => {
        if (socket.destroyed) return;
        if (reason !== null) {
          record(401);
          return refuse(
            socket,
            401,
            { error: 'invalid_credential', reason },
            strategy === 'oauth2' ? { 'WWW-Authenticate': 'Bearer error="invalid_token"' } : {},
          );
        }
        record(101);
        sawCredential(label, checked);
        wss.handleUpgrade(req, socket, head, (ws) => open(ws, label, strategy, checked));
      },
      (error: Error) => refuse(socket, 500, { error: 'verifier_failed', reason: error.message }),
    );
  });

  function open(ws: WebSocket, label: string, strategy: Strategy, request: CheckedRequest) {
    const s = statsOf(label);
    const session: WsSession = {
      id: ++nextId,
      label,
      strategy,
      request,
      ws,
      muted: false,
      endUnauthorized: (reason) => ws.close(CLOSE_UNAUTHORIZED, reason.slice(0, 120)),
    };
    s.opened += 1;
    s.open += 1;
    book.add(session);
    ws.on('error', () => ws.terminate());
    ws.on('close', (code: number) => {
      book.remove(session);
      s.open -= 1;
      s.closed[code] = (s.closed[code] ?? 0) + 1;
    });
    ws.on('ping', (data: Buffer) => {
      s.pings += 1;
      if (!session.muted) ws.pong(data);
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (session.muted) return;
      s.messages += 1;
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      const command = isBinary ? undefined : parseCommand(bytes);
      if (command?.type === 'reauth') return void reauth(session, command.headers);
      if (command?.type === 'blob') {
        const size = Math.min(MAX_MESSAGE, Math.max(0, Math.floor(Number(command.bytes) || 0)));
        return ws.send(Buffer.alloc(size, 0x78), { binary: true });
      }
      ws.send(bytes, { binary: isBinary });
    });
    ws.send(JSON.stringify({ type: 'welcome', session: session.id, strategy }));
  }

  async function reauth(session: WsSession, given: unknown) {
    const s = statsOf(session.label);
    const headers: Record<string, string> = { host: String(session.request.headers.host ?? '') };
    if (typeof given === 'object' && given !== null)
      for (const [k, v] of Object.entries(given)) if (typeof v === 'string') headers[k.toLowerCase()] = v;
    const request: CheckedRequest = { ...session.request, headers };
    const reason = await deps.verify(session.strategy, request).catch((e: Error) => e.message);
    if (reason !== null) {
      s.reauth_refused += 1;
      return session.ws.close(CLOSE_UNAUTHORIZED, reason.slice(0, 120));
    }
    s.reauth_ok += 1;
    sawCredential(session.label, request);
    book.replace(session, request);
    session.ws.send(JSON.stringify({ type: 'reauth_ok' }));
  }

  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stats: () =>
      Object.fromEntries([...stats].map(([label, { seen: _seen, ...s }]) => [label, s])) as Record<
        string,
        WsLabelStats
      >,
    /**
     * Ends the open sessions (of one label): with a close frame of `code` when given, else by
     * destroying the TCP connection (the client sees 1006). Resolves to how many.
     */
    drop(options: { label?: string; code?: number; reason?: string }): number {
      const sessions = book.matching(options.label);
      for (const { ws } of sessions) {
        if (options.code === undefined) ws.terminate();
        else ws.close(options.code, (options.reason ?? '').slice(0, 120));
      }
      return sessions.length;
    },
    /** The next `count` handshakes (of one label, or any) are answered `status` (default 503). */
    refuseNext(options: { label?: string; count: number; status?: number }) {
      refusals.set(options.label ?? '*', { count: options.count, status: options.status ?? 503 });
    },
    /** A muted session neither answers pings nor echoes: it looks dead to its client. */
    mute(options: { label?: string; muted: boolean }): number {
      const sessions = book.matching(options.label);
      for (const session of sessions) session.muted = options.muted;
      return sessions.length;
    },
    recheck: () => book.recheck(),
    close: () =>
      new Promise<void>((done) => {
        book.closeAll();
        for (const client of wss.clients) client.terminate();
        for (const socket of sockets) socket.destroy();
        server.close(() => done());
      }),
  };
}

function parseCommand(bytes: Buffer): { type?: unknown; headers?: unknown; bytes?: unknown } | undefined {
  if (bytes.length > 64 * 1024 || bytes[0] !== 0x7b /* { */) return undefined;
  try {
    const value = JSON.parse(bytes.toString('utf8')) as unknown;
    return typeof value === 'object' && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}
