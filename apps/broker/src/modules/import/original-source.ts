import { createRequire } from 'node:module';
import type pg from 'pg';

/** The source cannot be used (unreachable, or not the original's schema): the run stops. */
export class SourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SourceError';
  }
}

/** A `provider_profiles` row (live or deleted), as stored there: the client secret is in clear. */
export interface OriginalProvider {
  readonly id: string;
  readonly name: string;
  readonly deleted: boolean;
  readonly created_at: Date;
  /** The profile fields (name, auth_type, client_id, client_secret, params…), nulls included. */
  readonly profile: Readonly<Record<string, unknown>>;
}

export interface OriginalAlias {
  readonly provider_id: string;
  readonly alias: string;
  readonly alias_norm: string | null;
}

export interface OriginalConnection {
  readonly id: string;
  readonly workspace_id: string;
  readonly provider_id: string;
  readonly status: string;
  readonly scopes: readonly string[] | null;
  readonly created_at: Date;
  /** Its `tokens` row, if any (one per connection). */
  readonly token:
    | {
        readonly encrypted_data: string | null;
        readonly expires_at: Date | null;
        readonly created_at: Date | null;
      }
    | undefined;
}

export interface OriginalAuditEvent {
  readonly id: string;
  readonly connection_id: string | null;
  readonly event_type: string;
  readonly event_data: unknown;
  readonly ip: string | null;
  readonly user_agent: string | null;
  readonly created_at: Date;
  /** `created_at` in microseconds since the epoch (text): the resume position, without rounding. */
  readonly created_us: string;
}

export type AuditPosition = { readonly createdUs: string; readonly id: string };

const REQUIRED = ['provider_profiles', 'provider_aliases', 'connections', 'tokens'] as const;

const PROFILE_FIELDS = [
  'name',
  'auth_type',
  'auth_header',
  'client_id',
  'client_secret',
  'auth_url',
  'token_url',
  'issuer',
  'enable_discovery',
  'scopes',
  'params',
  'api_base_url',
  'user_info_endpoint',
  'description',
  'category',
] as const;

/** Where the URL points, for messages: host, port and database, never the user or password. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '5432'}${u.pathname}`;
  } catch {
    return 'the given URL';
  }
}

/**
 * The original's PostgreSQL database, read only (the session refuses writes). Every query names
 * its columns, so a schema that is not the original's (after its migrations 00–12) is reported as
 * such rather than half read.
 */
export async function openOriginalSource(url: string) {
  const pgModule = createRequire(import.meta.url)('pg') as typeof pg;
  const where = describeUrl(url);
  const client = new pgModule.Client({
    connectionString: url,
    connectionTimeoutMillis: 10_000,
    statement_timeout: 120_000,
    application_name: 'nexus-import',
  });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SET default_transaction_read_only = on');
  } catch (error) {
    await client.end().catch(() => {});
    const e = error as { code?: string; message?: string };
    throw new SourceError(
      `cannot reach the original's database at ${where}: ${(e.message || e.code || 'connection failed').slice(0, 200)}`,
    );
  }

  async function query<R>(text: string, params: unknown[] = []): Promise<R[]> {
    try {
      return (await client.query(text, params)).rows as R[];
    } catch (error) {
      const e = error as { code?: string; message?: string };
      // 42P01 undefined table, 42703 undefined column: not the schema this importer knows.
      if (e.code === '42P01' || e.code === '42703')
        throw new SourceError(
          `the database at ${where} does not have the original's schema as expected (after its migrations 00–12): ${e.message}`,
        );
      throw new SourceError(
        `reading the original's database at ${where} failed: ${(e.message ?? '').slice(0, 200)}`,
      );
    }
  }

  let hasAudit: boolean;
  try {
    const missing = (
      await query<{ name: string; found: string | null }>(
        `SELECT t.name, to_regclass(t.name)::text AS found FROM unnest($1::text[]) AS t(name)`,
        [[...REQUIRED, 'audit_events']],
      )
    ).filter((r) => r.found === null);
    hasAudit = !missing.some((m) => m.name === 'audit_events');
    const absent = missing.map((m) => m.name).filter((n) => n !== 'audit_events');
    if (absent.length > 0)
      throw new SourceError(
        `no original schema at ${where}: table${absent.length > 1 ? 's' : ''} ${absent.join(', ')} not found (is this the original's database, and its search_path?)`,
      );
  } catch (error) {
    await client.end().catch(() => {});
    throw error;
  }

  return {
    where,
    hasAudit,

    /** Every provider row, live and deleted, oldest first. */
    async providers(): Promise<OriginalProvider[]> {
      const rows = await query<Record<string, unknown>>(
        `SELECT id::text AS id, ${PROFILE_FIELDS.join(', ')}, deleted_at, created_at
           FROM provider_profiles ORDER BY created_at, id`,
      );
      return rows.map((r) => ({
        id: String(r.id),
        name: String(r.name),
        deleted: r.deleted_at !== null,
        created_at: r.created_at as Date,
        profile: Object.fromEntries(PROFILE_FIELDS.map((f) => [f, r[f]])),
      }));
    },

    async aliases(): Promise<OriginalAlias[]> {
      return query<OriginalAlias>(
        `SELECT provider_id::text AS provider_id, alias, alias_norm FROM provider_aliases ORDER BY created_at, alias`,
      );
    },

    async countConnections(): Promise<number> {
      return Number((await query<{ n: string }>('SELECT count(*) AS n FROM connections'))[0]?.n ?? 0);
    },

    /** Connections in id order after `after`, each with its token row. */
    async connections(after: string | undefined, limit: number): Promise<OriginalConnection[]> {
      const rows = await query<Record<string, unknown>>(
        `SELECT c.id::text AS id, c.workspace_id::text AS workspace_id, c.provider_id::text AS provider_id,
                c.status, c.scopes, c.created_at, t.connection_id IS NOT NULL AS has_token,
                t.encrypted_data, t.expires_at AS token_expires_at, t.created_at AS token_created_at
           FROM connections c LEFT JOIN tokens t ON t.connection_id = c.id
          WHERE $1::text IS NULL OR c.id::text > $1::text
          ORDER BY c.id::text LIMIT $2`,
        [after ?? null, limit],
      );
      return rows.map((r) => ({
        id: String(r.id),
        workspace_id: String(r.workspace_id),
        provider_id: String(r.provider_id),
        status: String(r.status),
        scopes: (r.scopes as string[] | null) ?? null,
        created_at: r.created_at as Date,
        token: r.has_token
          ? {
              encrypted_data: asText(r.encrypted_data),
              expires_at: (r.token_expires_at as Date | null) ?? null,
              created_at: (r.token_created_at as Date | null) ?? null,
            }
          : undefined,
      }));
    },

    /** The encrypted_data of up to `limit` tokens after `after` (id order), to test the key. */
    async tokenSample(
      after: string | undefined,
      limit: number,
    ): Promise<{ id: string; data: string | null }[]> {
      const rows = await query<{ id: string; encrypted_data: unknown }>(
        `SELECT connection_id::text AS id, encrypted_data FROM tokens
          WHERE $1::text IS NULL OR connection_id::text > $1::text ORDER BY connection_id::text LIMIT $2`,
        [after ?? null, limit],
      );
      return rows.map((r) => ({ id: r.id, data: asText(r.encrypted_data) }));
    },

    /** Audit events after `after` in (created_at, id) order. */
    async auditEvents(after: AuditPosition | undefined, limit: number): Promise<OriginalAuditEvent[]> {
      const us = `(extract(epoch FROM created_at) * 1000000)::bigint`;
      const rows = await query<Record<string, unknown>>(
        `SELECT id::text AS id, connection_id::text AS connection_id, event_type, event_data,
                ip_address::text AS ip, user_agent, created_at, ${us}::text AS created_us
           FROM audit_events
          WHERE $1::bigint IS NULL OR (${us}, id::text) > ($1::bigint, $2::text)
          ORDER BY ${us}, id::text LIMIT $3`,
        [after?.createdUs ?? null, after?.id ?? '', limit],
      );
      return rows.map((r) => ({
        id: String(r.id),
        connection_id: r.connection_id === null ? null : String(r.connection_id),
        event_type: String(r.event_type),
        event_data: r.event_data,
        // inet's text form carries a prefix length for a single host ("10.0.0.1/32").
        ip: typeof r.ip === 'string' ? r.ip.replace(/\/(32|128)$/, '') : null,
        user_agent: (r.user_agent as string | null) ?? null,
        created_at: r.created_at as Date,
        created_us: String(r.created_us),
      }));
    },

    async close(): Promise<void> {
      await client.end().catch(() => {});
    },
  };
}

export type OriginalSource = Awaited<ReturnType<typeof openOriginalSource>>;

/** `encrypted_data` is text; a bytea column holding the same base64 text is read alike. */
function asText(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (Buffer.isBuffer(value)) {
    const text = value.toString('latin1');
    return /^[A-Za-z0-9+/=\s]*$/.test(text) ? text : value.toString('base64');
  }
  return String(value);
}
