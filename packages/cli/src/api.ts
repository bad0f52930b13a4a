/**
 * The broker's admin API as the CLI uses it: the SDK's `NexusAdmin` for providers, agents and audit,
 * plus the calls the SDK does not have yet (custom scopes, trusted issuers, user-secret metadata,
 * secret-store resolution), written here over `fetch` with the same error shape.
 */
import {
  type Agent,
  type AuditEvent,
  type AuditQuery,
  type CreateAgentInput,
  NexusAdmin,
  NexusError,
  type Provider,
  type ProviderProfileInput,
  type UpdateAgentInput,
} from '@nexus-broker/sdk';
import type { Connection } from './connection.ts';

export type { Agent, AuditEvent, Provider };

export interface ConnectionSummary {
  id: string;
  workspace_id: string;
  provider_id: string;
  provider_name: string;
  status: string;
  scopes: string[];
  access_expires_at: string | null;
  last_refreshed_at: string | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
}

/** An entry of the provider catalogue as `GET /catalog` lists it. */
export interface CatalogSummary {
  key: string;
  name: string;
  description?: string;
  categories: string[];
  auth_type: string;
  version: number;
  parameters: string[];
}

export interface CustomScope {
  name: string;
  description: string;
}

export interface TrustedIssuer {
  id: string;
  issuer: string;
  jwks_uri: string | null;
  use_discovery: boolean;
  audience: string;
  algorithms: string[];
  user_id_claim: string;
  tenant_claim: string | null;
  permissions_claim: string;
  clearance_claim: string | null;
  version: number;
  created_at: string;
  updated_at: string;
}

export interface UserSecretMeta {
  name: string;
  zone: string;
  description: string;
  current_version: number;
  enabled: boolean;
  deleted: boolean;
  created_at: string;
  updated_at: string;
}

const enc = encodeURIComponent;
const USER_AGENT = 'nexus-cli/0.1.0';

export class Api {
  readonly admin: NexusAdmin;
  readonly #conn: Connection;

  constructor(conn: Connection) {
    this.#conn = conn;
    this.admin = new NexusAdmin({
      baseUrl: conn.url,
      apiKey: conn.apiKey,
      env: {},
      userAgent: USER_AGENT,
      retry: { maxRetries: 1 },
    });
  }

  get url(): string {
    return this.#conn.url;
  }

  /** For checks that call the broker directly (doctor); never printed. */
  get apiKey(): string {
    return this.#conn.apiKey;
  }

  /** One request outside the SDK; errors become `NexusError` like the SDK's. */
  async request<T>(
    method: string,
    path: string,
    options: { query?: Record<string, string | undefined>; json?: unknown; ifMatch?: number } = {},
  ): Promise<T> {
    const url = new URL(path, this.#conn.url.endsWith('/') ? this.#conn.url : `${this.#conn.url}/`);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const headers: Record<string, string> = {
      'x-api-key': this.#conn.apiKey,
      accept: 'application/json',
      'user-agent': USER_AGENT,
    };
    if (options.json !== undefined) headers['content-type'] = 'application/json';
    if (options.ifMatch !== undefined) headers['if-match'] = `"${options.ifMatch}"`;
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        ...(options.json === undefined ? {} : { body: JSON.stringify(options.json) }),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (cause) {
      throw new NexusError(`cannot reach the broker at ${this.#conn.url}: ${(cause as Error).message}`, {
        code: 'broker_unavailable',
        cause,
      });
    }
    const text = await response.text();
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (!response.ok) {
      const b = (body ?? {}) as { error?: string; message?: string; details?: unknown };
      throw new NexusError(b.message ?? `The broker answered HTTP ${response.status}.`, {
        status: response.status,
        code: b.error ?? `http_${response.status}`,
        details: b.details,
        requestId: response.headers.get('x-request-id') ?? undefined,
      });
    }
    return body as T;
  }

  // Providers (SDK)
  listProviders = () => this.admin.listProviders();
  /** The provider catalogue (`GET /catalog`): each entry's key, name, auth type and version. */
  async listCatalog(): Promise<CatalogSummary[]> {
    return (await this.request<{ entries: CatalogSummary[] }>('GET', 'catalog')).entries;
  }
  getProvider = (id: string) => this.admin.getProvider(id);
  providerIdByName = (name: string) => this.admin.getProviderIdByName(name);
  createProvider = (profile: ProviderProfileInput) => this.admin.createProvider(profile);
  replaceProvider = (id: string, profile: ProviderProfileInput, version: number) =>
    this.admin.replaceProvider(id, profile, { ifMatch: version });
  deleteProvider = (id: string, version?: number) =>
    this.admin.deleteProvider(id, version === undefined ? {} : { ifMatch: version });
  addAlias = (id: string, alias: string) => this.admin.addProviderAlias(id, alias);
  removeAlias = (id: string, alias: string) => this.admin.removeProviderAlias(id, alias);

  // Agents (SDK)
  listAgents = () => this.admin.listAgents();
  getAgent = (ref: string) => this.admin.getAgent(ref);
  createAgent = (input: CreateAgentInput) => this.admin.createAgent(input);
  updateAgent = (id: string, patch: UpdateAgentInput, version: number) =>
    this.admin.updateAgent(id, patch, { ifMatch: version });
  /** With the version read, a concurrent change makes the delete fail (409) instead of losing it. */
  deleteAgent = (id: string, version?: number) =>
    this.request<unknown>(
      'DELETE',
      `admin/v1/agents/${enc(id)}`,
      version === undefined ? {} : { ifMatch: version },
    );

  // Audit (SDK)
  auditPage = (query: AuditQuery) => this.admin.listAuditEvents(query);

  // Custom scopes (not in the SDK)
  async listScopes(): Promise<CustomScope[]> {
    return (await this.request<{ scopes: CustomScope[] }>('GET', 'admin/v1/scopes')).scopes;
  }
  /** One page of `GET /connections` (admin): filters, cursor paging, never credentials. */
  listConnections = (query: {
    status?: string;
    workspace_id?: string;
    provider?: string;
    limit?: string;
    cursor?: string;
  }) =>
    this.request<{ connections: ConnectionSummary[]; next_cursor: string | null }>('GET', 'connections', {
      query,
    });
  createScope = (scope: CustomScope) => this.request<CustomScope>('POST', 'admin/v1/scopes', { json: scope });
  deleteScope = (name: string) => this.request<unknown>('DELETE', `admin/v1/scopes/${enc(name)}`);

  // Trusted issuers (not in the SDK)
  async listTrustedIssuers(): Promise<TrustedIssuer[]> {
    return (await this.request<{ trusted_issuers: TrustedIssuer[] }>('GET', 'admin/v1/trusted-issuers'))
      .trusted_issuers;
  }
  createTrustedIssuer = (input: Record<string, unknown>) =>
    this.request<TrustedIssuer>('POST', 'admin/v1/trusted-issuers', { json: input });
  updateTrustedIssuer = (id: string, patch: Record<string, unknown>, version: number) =>
    this.request<TrustedIssuer>('PATCH', `admin/v1/trusted-issuers/${enc(id)}`, {
      json: patch,
      ifMatch: version,
    });
  deleteTrustedIssuer = (id: string, version?: number) =>
    this.request<unknown>(
      'DELETE',
      `admin/v1/trusted-issuers/${enc(id)}`,
      version === undefined ? {} : { ifMatch: version },
    );

  // User secrets, metadata only (not in the SDK's admin client)
  /** Every item of a paged list, following `next_cursor` (a broker that does not page answers one). */
  private async everyPage<T>(path: string, key: string, query: Record<string, string>): Promise<T[]> {
    const all: T[] = [];
    for (let cursor: string | null | undefined; cursor !== null; ) {
      const page = await this.request<{ [items: string]: unknown; next_cursor?: string | null }>(
        'GET',
        path,
        {
          query: cursor === undefined ? query : { ...query, cursor },
        },
      );
      all.push(...((page[key] as T[] | undefined) ?? []));
      cursor = page.next_cursor ?? null;
    }
    return all;
  }
  /** Every secret of the user and zone. */
  listSecrets = (user: string, zone: string, includeDeleted = false) =>
    this.everyPage<UserSecretMeta>('api/v2/secrets', 'secrets', {
      user_id: user,
      zone,
      include_deleted: String(includeDeleted),
    });
  /** Every version of a secret, newest first. */
  secretVersions = async (user: string, zone: string, name: string) => ({
    versions: await this.everyPage<{ version: number; created_at: string; created_by: string }>(
      `api/v2/secrets/${enc(name)}/versions`,
      'versions',
      { user_id: user, zone },
    ),
  });
  deleteSecret = (user: string, zone: string, name: string) =>
    this.request<unknown>('DELETE', `api/v2/secrets/${enc(name)}`, { query: { user_id: user, zone } });

  /**
   * Resolves `nexus-secret:NAME` strings of `config` in the broker's secret store, for sending
   * straight back to the broker (never printed).
   */
  async resolveSecrets<T>(config: T, user: string, zone: string): Promise<T> {
    const result = await this.request<{ config: T; unresolved: { name: string; reason: string }[] }>(
      'POST',
      'api/v2/secrets/resolve',
      { query: { user_id: user, zone }, json: { config, leave_unresolved: true } },
    );
    if (result.unresolved.length > 0)
      throw new NexusError(
        `secret references not found in the secret store of ${user}/${zone}: ${result.unresolved.map((u) => `${u.name} (${u.reason})`).join(', ')}`,
        { code: 'unresolved_secrets', status: 422 },
      );
    return result.config;
  }
}
