/**
 * `DATABASE_URL` checked before anything connects, and a failed first connection explained.
 * Neither ever repeats the URL's password.
 */
import { parse } from 'pg-connection-string';

/**
 * `sslmode` values `pg` knows: libpq's less `allow`, plus `no-verify`. `pg` turns TLS on, with
 * verification, for any other value.
 */
const SSL_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'] as const;

/**
 * What is wrong with a `postgres://` URL that `pg` would refuse at its first query, with a message
 * that names nothing, or misread; undefined when nothing. It is read by `pg`'s own parser, so
 * whatever `pg` accepts (a socket directory, no host, a literal `%`) is accepted here.
 */
export function postgresUrlProblem(value: string): string | undefined {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(value);
  } catch (error) {
    const { code, path } = error as { code?: unknown; path?: unknown };
    if (code === 'ENOENT' || code === 'EACCES')
      return `names a TLS file (sslcert, sslkey or sslrootcert) that cannot be read: ${String(path).slice(0, 200)}`;
    if (code === 'ERR_INVALID_URL')
      return 'is not a valid URL: check the host and the port (1–65535), and percent-encode @ : / ? # in the user name and password';
    // pg's own refusals (verify-ca without sslrootcert, say) are plain text without the URL.
    return `is refused by the PostgreSQL client: ${String((error as Error).message).slice(0, 300)}`;
  }
  if (parsed.port === '0')
    return 'has port 0: give the port PostgreSQL listens on (5432 by default), or none';
  const sslmode = (parsed as { sslmode?: unknown }).sslmode;
  if (typeof sslmode === 'string' && !(SSL_MODES as readonly string[]).includes(sslmode))
    return `has sslmode=${sslmode.slice(0, 32)}: use one of ${SSL_MODES.join(', ')}`;
  return undefined;
}

/** Where a URL points, for messages: `host:port/database`, never the user's password. */
export function postgresTarget(value: string): string {
  try {
    const { host, port, database } = parse(value);
    return `${host || 'localhost'}:${port || '5432'}/${database || '(the user name)'}`;
  } catch {
    return 'DATABASE_URL';
  }
}

/** Hints for the failures of a first connection, by socket code or SQLSTATE. */
const HINTS: Record<string, string> = {
  ECONNREFUSED: 'nothing accepts connections there: is PostgreSQL running, and on that port?',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name cannot be resolved right now',
  ETIMEDOUT: 'no answer: a firewall, or the wrong host',
  EHOSTUNREACH: 'the host is unreachable',
  '28P01': 'the server refused the user name or password',
  '28000': 'the server refused this user from this address (pg_hba.conf)',
  '3D000': 'that database does not exist: create it (`createdb`) or fix the name in DATABASE_URL',
  '53300': 'the server has no connection slot left (max_connections)',
  '57P03': 'the server is starting up or shutting down: try again shortly',
};

/**
 * A start-up failure on PostgreSQL as one line naming the target and what to do; undefined when
 * the error is not a connection failure (a migration's own error, say), which is left as it is.
 */
export function postgresConnectFailure(error: unknown, value: string): string | undefined {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  const text = typeof message === 'string' ? message : '';
  let hint = typeof code === 'string' ? HINTS[code] : undefined;
  // pg asks for the password only when the server wants one: a URL without it fails like this.
  if (
    hint === undefined &&
    text.startsWith('SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string')
  )
    hint = 'the server asks for a password and DATABASE_URL has none';
  if (
    hint === undefined &&
    (text === 'timeout expired' || text.startsWith('Connection terminated due to connection timeout'))
  )
    hint = 'no answer within DATABASE_CONNECT_TIMEOUT_MS: a firewall, or the wrong host';
  if (hint === undefined) return undefined;
  return `cannot use the PostgreSQL database at ${postgresTarget(value)} (DATABASE_URL): ${hint}`;
}
