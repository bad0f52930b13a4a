import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';
import { errorForLog } from './log-error.ts';

/**
 * Paths scrubbed from every log line. The request and response serializers below already log no
 * headers and no bodies; these catch a secret passed to a log call by mistake. Only exact paths:
 * wildcard paths make the redactor walk every object of every line (8% of CPU under load).
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-api-key"]',
  'client_secret',
  'access_token',
  'refresh_token',
  'id_token',
  'password',
  'secret',
  'token',
  'api_key',
  'credentials',
];

/**
 * `,"time":"<ISO 8601>"` as pino writes it, built once per millisecond instead of once per line
 * (a `Date` and `toISOString` per line was 4% of the broker's CPU under load).
 */
let lastMs = -1;
let lastTime = '';
export function isoTime(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastTime = `,"time":"${new Date(ms).toISOString()}"`;
  }
  return lastTime;
}

const LEVEL_INFO = 30;

/**
 * A request path as logged: without its query string (which can carry codes and state), and with
 * the secret part of any admin key in it replaced (an operator revoking a leaked key by pasting
 * the key itself into `DELETE /admin/v1/admin-keys/…`). `includes` first: most paths hold none.
 */
export function loggedPath(url: string): string {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  return path.includes('nxa_')
    ? path.replace(/nxa_([a-f0-9]{16})_[A-Za-z0-9_-]+/g, 'nxa_$1_[redacted]')
    : path;
}

/** Characters a JSON string may hold as they are (no quote, backslash, control or non-ASCII). */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
/** `JSON.stringify(text)`, skipped for the plain text most fields are (ids, methods, paths, addresses). */
const quoted = (text: string) => (PLAIN.test(text) ? `"${text}"` : JSON.stringify(text));

/**
 * An info line written straight to the logger's destination, in the format of its own lines
 * (`{"level":30,"time":…,"service":"nexus",<fields>,"msg":…}`), for the fixed-field lines of every
 * request: going through pino (serializers, the redactor) cost them a fifth of a no-op request.
 * `fields` must be JSON members built with `quoted`, from values that hold no secret.
 */
function directInfoLine(logger: Logger): (fields: string, msg: string) => void {
  const stream = (logger as unknown as Record<symbol, { write(line: string): void }>)[pino.symbols.streamSym];
  return (fields, msg) => {
    if (stream === undefined || !logger.isLevelEnabled('info')) return;
    stream.write(`{"level":${LEVEL_INFO}${isoTime()},"service":"nexus",${fields},"msg":"${msg}"}\n`);
  };
}

/**
 * The access line of every answered request (`request completed`, with `request_id`, `req`, `res`
 * and `ms`). Its fields are fixed and hold no secret: the method, the path without its query
 * string (which can carry codes and state), the client address, the status and the duration;
 * `quoted` escapes what a caller put in the path.
 */
export function createAccessLog(logger: Logger) {
  const write = directInfoLine(logger);
  return (line: {
    requestId: string;
    method: string;
    url: string;
    ip: string | undefined;
    status: number;
    ms: number;
  }): void => {
    const path = loggedPath(line.url);
    write(
      `"request_id":${quoted(line.requestId)},"req":{"method":${quoted(line.method)},"path":${quoted(path)}` +
        `${line.ip === undefined ? '' : `,"ip":${quoted(line.ip)}`}},"res":{"status":${line.status}},"ms":${line.ms}`,
      'request completed',
    );
  };
}

/**
 * The line of every gRPC call that succeeded (`call completed`, with `grpc.method`, `grpc.code`,
 * `request_id` and `ms`), written like the access line. Failed calls carry an error and details,
 * and keep going through the logger.
 */
export function createCallLog(logger: Logger) {
  const write = directInfoLine(logger);
  return (line: { method: string; code: string; requestId: string; ms: number }): void =>
    write(
      `"grpc":{"method":${quoted(line.method)},"code":${quoted(line.code)}},` +
        `"request_id":${quoted(line.requestId)},"ms":${line.ms}`,
      'call completed',
    );
}

/**
 * Standard output, written in blocks: lines gather until 4 KiB or 100 ms, whichever comes first,
 * instead of one write(2) per line (6% of a token fetch's CPU). What is buffered is flushed
 * synchronously when the process exits (pino registers that); a `kill -9` loses at most the
 * last 100 ms of lines, and never an audit event (those are in the database).
 */
const stdoutInBlocks = () =>
  new TurnBatched(
    pino.destination({
      dest: process.stdout.fd ?? 1,
      sync: false,
      minLength: 4096,
      periodicFlush: 100,
      // Blocks of bytes, kept as a list until written: a block of text is re-measured on every write.
      contentMode: 'buffer',
    }) as unknown as BlockDestination, // sonic-boom's types know only its text mode
  );

type BlockDestination = {
  write(bytes: Buffer): void;
  flushSync(): void;
  flush(cb?: (error?: Error) => void): void;
};

/** Batched destinations still alive, flushed on exit by one hook (a test process builds many). */
const liveBatches = new Set<WeakRef<TurnBatched>>();
let exitHooked = false;

/**
 * The lines of one turn of the event loop handed to a destination as one block of UTF-8, in order.
 * sonic-boom measures the UTF-8 length of its whole pending block on every write (the block is
 * built with `+=`, and measuring it flattens and copies it): once per line, that was ~2.5 µs of a
 * no-op request's ~35 µs. Once per turn, it is a fraction of a microsecond per line. Lines wait at
 * most for the end of the turn; `flushSync` and `flush` (pino's, on exit) hand them over first.
 */
export class TurnBatched {
  #pending: string[] = [];
  readonly #inner: BlockDestination;
  readonly #release = () => {
    if (this.#pending.length === 0) return;
    const text = this.#pending.join('');
    this.#pending = [];
    this.#inner.write(Buffer.from(text));
  };

  constructor(inner: BlockDestination) {
    this.#inner = inner;
    liveBatches.add(new WeakRef(this));
    if (!exitHooked) {
      exitHooked = true;
      // pino hands its own destinations to an exit hook that calls their `flushSync`; that hook
      // runs before this one (registered first), so this one hands over what is held and flushes again.
      process.once('exit', () => {
        for (const ref of liveBatches) {
          try {
            ref.deref()?.flushSync();
          } catch {
            // A destination already ended (pino ends its own on beforeExit): nothing is left to write.
          }
        }
      });
    }
  }

  write(line: string): boolean {
    if (this.#pending.push(line) === 1) setImmediate(this.#release);
    return true;
  }

  flushSync(): void {
    this.#release();
    this.#inner.flushSync();
  }

  flush(cb?: (error?: Error) => void): void {
    this.#release();
    this.#inner.flush(cb);
  }
}

/**
 * Readable lines (pino-pretty, loaded only then) for `pretty`, or for `auto` on a terminal outside
 * production; undefined for JSON. A log collector always gets JSON unless told otherwise.
 */
export function prettyDestination(
  format: 'auto' | 'json' | 'pretty',
  context: { production: boolean; terminal: boolean },
): pino.DestinationStream | undefined {
  const pretty = format === 'pretty' || (format === 'auto' && context.terminal && !context.production);
  if (!pretty) return undefined;
  const build = createRequire(import.meta.url)('pino-pretty') as (options: object) => pino.DestinationStream;
  return build({
    colorize: context.terminal,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'service',
    sync: true,
  });
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'nexus' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: isoTime,
      serializers: {
        // Only method and path: query strings can carry codes and state (OAuth callback).
        req: (req: { method: string; url: string; ip?: string }) => ({
          method: req.method,
          path: loggedPath(req.url),
          ip: req.ip,
        }),
        res: (res: { statusCode: number }) => ({ status: res.statusCode }),
        err: errorForLog,
      },
    },
    destination ?? stdoutInBlocks(),
  );
}
