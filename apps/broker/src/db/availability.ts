/**
 * Tells a database that cannot answer (stopped, restarting, frozen, unreachable, out of
 * connections, or a SQLite file another process holds the write lock of) from every other
 * failure. Callers answer the first with a retryable `503 database_unavailable` instead of a
 * `500`: the request was fine, the broker is fine, only the database is missing for a while.
 *
 * It reads the drivers' typed codes where they exist (SQLSTATE on `pg` errors, `errno` codes on
 * socket errors, `errcode` on `node:sqlite` errors) and, for the few failures `pg` and `pg-pool`
 * raise without a code, their fixed message texts (exact or prefix matches, no patterns).
 */

/**
 * SQLSTATE codes (PostgreSQL appendix A) of a server that is going away or cannot take us now.
 * Class 08 (connection exception) is matched as a class.
 */
const UNAVAILABLE_SQLSTATES: ReadonlySet<string> = new Set([
  '57P01', // admin_shutdown: `pg_ctl stop -m fast`, a failover
  '57P02', // crash_shutdown: another backend crashed and the server is resetting
  '57P03', // cannot_connect_now: the server is starting up or shutting down
  '53300', // too_many_connections
  '57014', // query_canceled: our statement_timeout (or an operator's pg_cancel_backend)
]);

/** Socket errors of a server that is not there, or vanished mid-conversation. */
const UNAVAILABLE_SOCKET_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
  'EAI_AGAIN', // the database's host name cannot be resolved right now
]);

/** Messages `pg` and `pg-pool` throw without a code (pg 8.x, pg-pool 3.x). */
const UNAVAILABLE_MESSAGES: ReadonlySet<string> = new Set([
  'timeout exceeded when trying to connect', // pg-pool: no connection within connectionTimeoutMillis
  'Query read timeout', // pg: no answer within query_timeout (a frozen server)
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'timeout expired', // pg: connectionTimeoutMillis of a lone client
]);
/** `Connection terminated`, `… unexpectedly`, `… due to connection timeout`. */
const TERMINATED_PREFIX = 'Connection terminated';

/** node:sqlite's `errcode` is the extended result code; its low byte is the primary one. */
const SQLITE_BUSY = 5;

/** How deep a `cause` chain is followed; wrappers nest a few levels at most. */
const MAX_DEPTH = 8;

function matchesItself(error: object): boolean {
  const { code, message, errcode } = error as { code?: unknown; message?: unknown; errcode?: unknown };
  if (typeof code === 'string') {
    if (UNAVAILABLE_SOCKET_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code)) return true;
    // A SQLSTATE is five characters; class 08 is every connection exception.
    if (code.length === 5 && code.startsWith('08')) return true;
    if (code === 'ERR_SQLITE_ERROR' && typeof errcode === 'number' && (errcode & 0xff) === SQLITE_BUSY)
      return true;
  }
  if (typeof message === 'string')
    return UNAVAILABLE_MESSAGES.has(message) || message.startsWith(TERMINATED_PREFIX);
  return false;
}

/**
 * The error in `error`'s `cause` chain (or among an `AggregateError`'s members, as a connection
 * to a host with several addresses reports them) that says the database is unavailable: the
 * driver's own error, whose message and code are worth a log line. Undefined for other failures.
 */
export function unavailableCause(error: unknown): { message?: unknown; code?: unknown } | undefined {
  return causeWhere(error, matchesItself);
}

/** The first error in `error`'s `cause` chain (or an `AggregateError`'s members) that `matches`. */
function causeWhere(error: unknown, matches: (error: object) => boolean): object | undefined {
  const seen = new Set<object>();
  const visit = (value: unknown, depth: number): object | undefined => {
    if (typeof value !== 'object' || value === null || depth > MAX_DEPTH || seen.has(value)) return undefined;
    seen.add(value);
    if (matches(value)) return value;
    const { cause, errors } = value as { cause?: unknown; errors?: unknown };
    const found = visit(cause, depth + 1);
    if (found !== undefined || !Array.isArray(errors)) return found;
    for (const member of errors) {
      const inMember = visit(member, depth + 1);
      if (inMember !== undefined) return inMember;
    }
    return undefined;
  };
  return visit(error, 0);
}

/**
 * SQLSTATE 22021 (`character_not_in_repertoire`: PostgreSQL's "invalid byte sequence for encoding
 * UTF8: 0x00") and 22P05 (`untranslatable_character`): text the database cannot hold, a NUL from a
 * value the edge did not see (a claim decoded from a token). The request's fault, not the broker's.
 */
const UNSTORABLE_TEXT_SQLSTATES: ReadonlySet<string> = new Set(['22021', '22P05']);

/** Whether `error` (or its cause chain) is the database refusing text it cannot hold. */
export function isUnstorableText(error: unknown): boolean {
  return (
    causeWhere(error, (e) => UNSTORABLE_TEXT_SQLSTATES.has(String((e as { code?: unknown }).code))) !==
    undefined
  );
}

/** Whether `error` (or its cause chain) says the database is unavailable; see `unavailableCause`. */
export function isDatabaseUnavailable(error: unknown): boolean {
  return unavailableCause(error) !== undefined;
}
