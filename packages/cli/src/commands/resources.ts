/** Listing, showing and deleting objects over the admin API, for people (tables) and scripts (JSON, YAML). */
import type { Agent, AuditEvent, ConnectionSummary, Provider, TrustedIssuer } from '../api.ts';
import { CliError, writeSecretFile } from '../io.ts';
import { emit, table } from '../render.ts';
import { type Ctx, confirm } from './context.ts';
import { providersAdd } from './providers-add.ts';

const need = (ctx: Ctx, what: string): string => {
  const v = ctx.args[0];
  if (v === undefined) throw new CliError(`give the ${what}`);
  return v;
};

const OPTIONAL = [
  'client_id',
  'auth_url',
  'token_url',
  'issuer',
  'api_base_url',
  'user_info_endpoint',
  'description',
  'category',
];

/** The same keys for every provider (null when unset), so scripts see one shape. */
function full(p: Provider): Provider {
  const out: Record<string, unknown> = { ...p };
  for (const k of OPTIONAL) out[k] ??= null;
  return Object.fromEntries(
    Object.keys(out)
      .sort()
      .map((k) => [k, out[k]]),
  ) as unknown as Provider;
}

async function providerByName(ctx: Ctx, ref: string): Promise<Provider> {
  const api = ctx.api();
  const id = /^[0-9a-f-]{36}$/.test(ref) ? ref : await api.providerIdByName(ref);
  return full(await api.getProvider(id));
}

export async function providers(ctx: Ctx, verb: string | undefined): Promise<number> {
  if (verb === 'add') return providersAdd(ctx);
  const api = ctx.api();
  if (verb === 'list') {
    const all = await Promise.all(
      (await api.listProviders()).map(async (p) => full(await api.getProvider(p.id))),
    );
    all.sort((a, b) => a.name.localeCompare(b.name));
    emit(ctx.io, ctx.format, all, () =>
      table(
        ctx.io,
        ['NAME', 'AUTH TYPE', 'CLIENT ID', 'SECRET', 'ALIASES', 'VERSION', 'ID'],
        all.map((p) => [
          p.name,
          p.auth_type,
          p.client_id,
          p.has_client_secret ? 'set' : '-',
          p.aliases.join(',') || '-',
          p.version,
          p.id,
        ]),
      ),
    );
    return 0;
  }
  if (verb === 'get') {
    const p = await providerByName(ctx, need(ctx, 'provider name'));
    emit(ctx.io, ctx.format, p, () => keyValues(ctx, p as unknown as Record<string, unknown>));
    return 0;
  }
  if (verb === 'delete') {
    const p = await providerByName(ctx, need(ctx, 'provider name'));
    if (!(await confirm(ctx, `Delete provider ${p.name} (${p.id})? Its connections stop working.`)))
      return cancelled(ctx);
    await api.deleteProvider(p.id, p.version);
    return done(ctx, { id: p.id, deleted: true }, `deleted provider ${p.name}`);
  }
  return usage('providers');
}

export async function agents(ctx: Ctx, verb: string | undefined): Promise<number> {
  const api = ctx.api();
  if (verb === 'list') {
    const all = await api.listAgents();
    emit(ctx.io, ctx.format, all, () =>
      table(
        ctx.io,
        ['AGENT ID', 'ACTIVE', 'SCOPES', 'PROVIDERS', 'WORKSPACES', 'SECRETS', 'VERSION'],
        all.map((a: Agent) => [
          a.agent_id,
          a.active,
          a.allowed_scopes.join(',') || '-',
          a.allowed_providers.length,
          a.allowed_workspaces.join(',') || '-',
          a.secrets.length,
          a.version,
        ]),
      ),
    );
    return 0;
  }
  if (verb === 'get') {
    const a = await api.getAgent(need(ctx, 'agent id'));
    emit(ctx.io, ctx.format, a, () => keyValues(ctx, a as unknown as Record<string, unknown>));
    return 0;
  }
  if (verb === 'delete') {
    const a = await api.getAgent(need(ctx, 'agent id'));
    if (!(await confirm(ctx, `Delete agent ${a.agent_id}? Its secrets are revoked.`))) return cancelled(ctx);
    await api.deleteAgent(a.id, a.version);
    return done(ctx, { id: a.id, deleted: true }, `deleted agent ${a.agent_id}`);
  }
  if (verb === 'rotate-secret') {
    const a = await api.getAgent(need(ctx, 'agent id'));
    const rotated = await api.admin.rotateAgentSecret(a.id);
    if (ctx.flags.out !== undefined) {
      writeSecretFile(ctx.flags.out, `${rotated.client_secret}\n`);
      ctx.io.err(`new client secret ${rotated.secret_id} of ${a.agent_id} written to ${ctx.flags.out}`);
    } else {
      // Printed once, like `nexus admin-keys create`: the operator asked for it.
      ctx.io.out(rotated.client_secret);
      ctx.io.err(`secret id ${rotated.secret_id}; previous secrets expire at ${rotated.previous_expire_at}`);
    }
    return 0;
  }
  return usage('agents');
}

export async function scopes(ctx: Ctx, verb: string | undefined): Promise<number> {
  const api = ctx.api();
  if (verb === 'list') {
    const all = await api.listScopes();
    emit(ctx.io, ctx.format, all, () =>
      table(
        ctx.io,
        ['NAME', 'DESCRIPTION'],
        all.map((s) => [s.name, s.description]),
      ),
    );
    return 0;
  }
  if (verb === 'delete') {
    const name = need(ctx, 'scope name');
    if (!(await confirm(ctx, `Delete custom scope ${name}?`))) return cancelled(ctx);
    await api.deleteScope(name);
    return done(ctx, { name, deleted: true }, `deleted scope ${name}`);
  }
  return usage('scopes');
}

async function issuerByRef(ctx: Ctx, ref: string): Promise<TrustedIssuer> {
  const found = (await ctx.api().listTrustedIssuers()).find((t) => t.id === ref || t.issuer === ref);
  if (!found) throw new CliError(`no trusted issuer ${ref}`);
  return found;
}

export async function trustedIssuers(ctx: Ctx, verb: string | undefined): Promise<number> {
  const api = ctx.api();
  if (verb === 'list') {
    const all = await api.listTrustedIssuers();
    emit(ctx.io, ctx.format, all, () =>
      table(
        ctx.io,
        ['ISSUER', 'AUDIENCE', 'JWKS', 'ALGORITHMS', 'VERSION', 'ID'],
        all.map((t) => [
          t.issuer,
          t.audience,
          t.use_discovery ? 'discovery' : t.jwks_uri,
          t.algorithms.join(','),
          t.version,
          t.id,
        ]),
      ),
    );
    return 0;
  }
  if (verb === 'get') {
    const t = await issuerByRef(ctx, need(ctx, 'issuer or id'));
    emit(ctx.io, ctx.format, t, () => keyValues(ctx, t as unknown as Record<string, unknown>));
    return 0;
  }
  if (verb === 'delete') {
    const t = await issuerByRef(ctx, need(ctx, 'issuer or id'));
    if (!(await confirm(ctx, `Stop trusting ${t.issuer}? Its users' tokens are refused from now on.`)))
      return cancelled(ctx);
    await api.deleteTrustedIssuer(t.id, t.version);
    return done(ctx, { id: t.id, deleted: true }, `deleted trusted issuer ${t.issuer}`);
  }
  return usage('trusted-issuers');
}

function auditQuery(ctx: Ctx) {
  const f = ctx.flags;
  const limit = f.limit === undefined ? undefined : Number(f.limit);
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= 500))
    throw new CliError('--limit must be an integer from 1 to 500');
  return {
    ...(f['event-type'] ? { event_type: f['event-type'] } : {}),
    ...(f.actor ? { actor: f.actor } : {}),
    ...(f.resource ? { resource: f.resource } : {}),
    ...(f.since ? { since: f.since } : {}),
    ...(f.cursor ? { cursor: f.cursor } : {}),
    ...(limit ? { limit } : {}),
  };
}

const auditRow = (e: AuditEvent) => [
  e.occurred_at,
  e.actor,
  e.event_type,
  `${e.resource_type}${e.resource_id ? `:${e.resource_id}` : ''}`,
  e.outcome,
];
const AUDIT_HEAD = ['TIME', 'ACTOR', 'EVENT', 'RESOURCE', 'OUTCOME'];

export async function audit(ctx: Ctx, verb: string | undefined): Promise<number> {
  const api = ctx.api();
  if (verb === 'list') {
    const page = await api.auditPage(auditQuery(ctx));
    emit(ctx.io, ctx.format, page, () => {
      table(ctx.io, AUDIT_HEAD, page.events.map(auditRow));
      if (page.next_cursor) ctx.io.err(`more: --cursor ${page.next_cursor}`);
    });
    return 0;
  }
  if (verb === 'tail') {
    const query = auditQuery(ctx);
    const first = await api.auditPage({ ...query, limit: query.limit ?? 20 });
    let last = first.events[0]?.seq ?? 0;
    const print = (events: AuditEvent[]) => {
      for (const e of events) {
        if (ctx.format === 'table') ctx.io.out(auditRow(e).join('  '));
        else ctx.io.out(JSON.stringify(e)); // one JSON object per line, for streaming
      }
    };
    print([...first.events].reverse());
    if (!ctx.flags.follow) return 0;
    const given = ctx.flags.interval ?? '2000';
    if (!/^\d{1,7}$/.test(given)) throw new CliError('--interval is milliseconds, an integer (e.g. 2000)');
    const interval = Math.max(200, Number(given));
    for (;;) {
      await new Promise((r) => setTimeout(r, interval));
      const fresh: AuditEvent[] = [];
      let cursor: string | undefined;
      for (;;) {
        const { cursor: _c, ...rest } = query;
        const page = await api.auditPage({ ...rest, limit: 200, ...(cursor ? { cursor } : {}) });
        const newer = page.events.filter((e) => e.seq > last);
        fresh.push(...newer);
        if (newer.length < page.events.length || page.next_cursor === null) break;
        cursor = page.next_cursor;
      }
      if (fresh.length > 0) {
        last = fresh[0]!.seq;
        print(fresh.reverse());
      }
    }
  }
  return usage('audit');
}

export async function secrets(ctx: Ctx, verb: string | undefined): Promise<number> {
  const api = ctx.api();
  const user = ctx.flags.user;
  if (user === undefined) throw new CliError('name the user: --user USER');
  const zone = ctx.flags.zone ?? 'default';
  if (verb === 'list') {
    const all = await api.listSecrets(user, zone, ctx.flags['include-deleted'] === true);
    emit(ctx.io, ctx.format, all, () =>
      table(
        ctx.io,
        ['NAME', 'ZONE', 'VERSION', 'ENABLED', 'UPDATED', 'DESCRIPTION'],
        all.map((s) => [s.name, s.zone, s.current_version, s.enabled, s.updated_at, s.description]),
      ),
    );
    return 0;
  }
  if (verb === 'get') {
    const name = need(ctx, 'secret name');
    const meta = (await api.listSecrets(user, zone, true)).find((s) => s.name === name);
    if (!meta) throw new CliError(`no secret ${name} for ${user} in zone ${zone}`);
    const { versions } = await api.secretVersions(user, zone, name);
    const data = { ...meta, versions };
    emit(ctx.io, ctx.format, data, () => {
      keyValues(ctx, meta as unknown as Record<string, unknown>);
      ctx.io.out('');
      table(
        ctx.io,
        ['VERSION', 'CREATED', 'BY'],
        versions.map((v) => [v.version, v.created_at, v.created_by]),
      );
      ctx.io.err('(values are never printed by this command)');
    });
    return 0;
  }
  if (verb === 'delete') {
    const name = need(ctx, 'secret name');
    if (!(await confirm(ctx, `Delete secret ${name} of ${user} (zone ${zone})?`))) return cancelled(ctx);
    await api.deleteSecret(user, zone, name);
    return done(ctx, { name, deleted: true }, `deleted secret ${name}`);
  }
  return usage('secrets');
}

export async function connections(ctx: Ctx, verb: string | undefined): Promise<number> {
  const api = ctx.api();
  if (verb === 'list') {
    const f = ctx.flags;
    const wanted = f.limit === undefined ? Number.POSITIVE_INFINITY : Number(f.limit);
    if (!Number.isInteger(wanted) && wanted !== Number.POSITIVE_INFINITY)
      throw new CliError('--limit must be an integer');
    const all: ConnectionSummary[] = [];
    let cursor: string | undefined = f.cursor;
    do {
      const page = await api.listConnections({
        ...(f.status ? { status: f.status } : {}),
        ...(f.user ? { workspace_id: f.user } : {}),
        ...(ctx.args[0] ? { provider: ctx.args[0] } : {}),
        limit: String(Math.min(500, wanted - all.length)),
        ...(cursor ? { cursor } : {}),
      });
      all.push(...page.connections);
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined && all.length < wanted);
    // The API pages in id order (random UUIDs) for its cursor; people read them oldest first, as
    // `audit tail` prints events. ISO timestamps of one format sort as text; the id breaks ties.
    all.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
    emit(ctx.io, ctx.format, all, () =>
      table(
        ctx.io,
        ['ID', 'WORKSPACE', 'PROVIDER', 'STATUS', 'CREATED', 'UPDATED', 'LAST ERROR'],
        all.map((c) => [
          c.id,
          c.workspace_id,
          c.provider_name,
          c.status,
          c.created_at,
          c.updated_at,
          c.last_error ?? '-',
        ]),
      ),
    );
    return 0;
  }
  if (verb === 'get') {
    const id = need(ctx, 'connection id');
    const status = await api.admin.checkConnection(id);
    const data = { ...status, connection_id: id };
    emit(ctx.io, ctx.format, data, () => keyValues(ctx, data as Record<string, unknown>));
    return 0;
  }
  if (verb === 'revoke') {
    const id = need(ctx, 'connection id');
    if (!(await confirm(ctx, `Revoke connection ${id}?`))) return cancelled(ctx);
    const result = await api.admin.revokeConnection(id);
    return done(ctx, result, `revoked connection ${id}`);
  }
  return usage('connections');
}

function keyValues(ctx: Ctx, o: Record<string, unknown>): void {
  const width = Math.max(...Object.keys(o).map((k) => k.length));
  for (const [k, v] of Object.entries(o))
    ctx.io.out(`${k.padEnd(width)}  ${typeof v === 'string' ? v : JSON.stringify(v)}`);
}

function done(ctx: Ctx, data: unknown, text: string): number {
  emit(ctx.io, ctx.format, data, () => ctx.io.out(text));
  return 0;
}

function cancelled(ctx: Ctx): number {
  ctx.io.err('cancelled: nothing was changed');
  return 1;
}

function usage(command: string): never {
  throw new CliError(`unknown or missing subcommand; run \`nexus ${command} --help\``);
}
