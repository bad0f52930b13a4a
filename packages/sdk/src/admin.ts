/**
 * `NexusAdmin`: the operator API (providers, connections, agents, audit), authenticated with an
 * admin API key (`X-API-Key`).
 */
import { ApiKeyAuth } from './auth.ts';
import { type CommonOptions, resolveAdminCredential, resolveCommon } from './config.ts';
import type { RequestConnectionResponse } from './consent-types.ts';
import { type CallOptions, Transport } from './http.ts';
import type {
  Agent,
  AuditEvent,
  AuditPage,
  AuditQuery,
  CheckConnectionResponse,
  CreateAgentInput,
  CreatedAgent,
  CreatedResponse,
  MessageResponse,
  Provider,
  ProviderMetadata,
  ProviderProfileInput,
  ProviderProfilePatch,
  ProviderSummary,
  RevokeConnectionResponse,
  RotatedAgentSecret,
  TokenResponse,
  UpdateAgentInput,
} from './types.ts';

export interface NexusAdminOptions extends CommonOptions {
  /** Admin API key. Env `NEXUS_API_KEY`. */
  apiKey?: string;
}

/**
 * Optimistic concurrency: the object's `version` as read (a number, sent as the ETag `"N"`) or an
 * ETag string as the broker sent it; the broker answers 409 `version_conflict` if it changed.
 */
export interface IfMatchOptions extends CallOptions {
  ifMatch?: number | string;
}

export interface ConnectionEvent {
  id: string;
  type: string;
  connection_id: string;
  workspace_id: string;
  provider_id: string;
  details: Record<string, unknown>;
  created_at: string;
}

export interface ConnectionEventQuery {
  connection_id?: string;
  type?:
    | 'connection.active'
    | 'connection.attention_required'
    | 'connection.expired'
    | 'connection.revoked'
    | 'connection.refresh_failed'
    | 'connection.refresh_recovered';
  limit?: number;
  cursor?: string;
}

const enc = encodeURIComponent;
const ifMatch = (options: IfMatchOptions) =>
  options.ifMatch === undefined
    ? {}
    : {
        headers: {
          'if-match': typeof options.ifMatch === 'number' ? `"${options.ifMatch}"` : options.ifMatch,
        },
      };
const call = ({ signal, timeoutMs }: CallOptions): CallOptions => ({
  ...(signal ? { signal } : {}),
  ...(timeoutMs ? { timeoutMs } : {}),
});

export class NexusAdmin {
  readonly #transport: Transport;

  /** Reads options, then `NEXUS_URL` and `NEXUS_API_KEY`; throws ConfigurationError without a key. */
  constructor(options: NexusAdminOptions = {}) {
    const common = resolveCommon(options);
    const credential = resolveAdminCredential(options);
    this.#transport = new Transport(common);
    if (credential.kind === 'apiKey') this.#transport.setAuthorizer(new ApiKeyAuth(credential.apiKey));
  }

  get baseUrl(): string {
    return this.#transport.config.baseUrl;
  }

  // Providers

  /** Registers a provider; answers its id. */
  createProvider(profile: ProviderProfileInput, options: CallOptions = {}): Promise<CreatedResponse> {
    return this.#transport.request({
      method: 'POST',
      path: '/providers',
      json: { profile },
      ...call(options),
    });
  }

  /** Live providers as `[{id, name}]`. */
  listProviders(options: CallOptions = {}): Promise<ProviderSummary[]> {
    return this.#transport.request({ method: 'GET', path: '/providers', ...call(options) });
  }

  providerMetadata(options: CallOptions = {}): Promise<ProviderMetadata> {
    return this.#transport.request({ method: 'GET', path: '/providers/metadata', ...call(options) });
  }

  /** The id of a live provider, by name or alias. */
  async getProviderIdByName(name: string, options: CallOptions = {}): Promise<string> {
    const { id } = await this.#transport.request<{ id: string }>({
      method: 'GET',
      path: `/providers/by-name/${enc(name)}`,
      ...call(options),
    });
    return id;
  }

  /** A provider profile (its client secret is never returned). */
  getProvider(id: string, options: CallOptions = {}): Promise<Provider> {
    return this.#transport.request({ method: 'GET', path: `/providers/${enc(id)}`, ...call(options) });
  }

  /** Replaces a profile; an omitted client_secret keeps the stored one. */
  replaceProvider(
    id: string,
    profile: ProviderProfileInput,
    options: IfMatchOptions = {},
  ): Promise<Provider> {
    return this.#transport.request({
      method: 'PUT',
      path: `/providers/${enc(id)}`,
      json: { profile },
      ...ifMatch(options),
      ...call(options),
    });
  }

  /** Changes some fields (null clears one); validated like createProvider. */
  patchProvider(id: string, patch: ProviderProfilePatch, options: IfMatchOptions = {}): Promise<Provider> {
    return this.#transport.request({
      method: 'PATCH',
      path: `/providers/${enc(id)}`,
      json: { profile: patch },
      ...ifMatch(options),
      ...call(options),
    });
  }

  /** Soft-deletes a provider; its connections stop working. */
  deleteProvider(id: string, options: IfMatchOptions = {}): Promise<CreatedResponse> {
    return this.#transport.request({
      method: 'DELETE',
      path: `/providers/${enc(id)}`,
      ...ifMatch(options),
      ...call(options),
    });
  }

  async listProviderAliases(id: string, options: CallOptions = {}): Promise<string[]> {
    const { aliases } = await this.#transport.request<{ aliases: string[] }>({
      method: 'GET',
      path: `/providers/${enc(id)}/aliases`,
      ...call(options),
    });
    return aliases;
  }

  async addProviderAlias(id: string, alias: string, options: CallOptions = {}): Promise<string[]> {
    const { aliases } = await this.#transport.request<{ aliases: string[] }>({
      method: 'POST',
      path: `/providers/${enc(id)}/aliases`,
      json: { alias },
      ...call(options),
    });
    return aliases;
  }

  removeProviderAlias(id: string, alias: string, options: CallOptions = {}): Promise<MessageResponse> {
    return this.#transport.request({
      method: 'DELETE',
      path: `/providers/${enc(id)}/aliases/${enc(alias)}`,
      ...call(options),
    });
  }

  // Connections

  /** Starts a consent for a workspace (operator form of requestConnection). */
  createConsent(
    input: {
      workspace_id: string;
      provider_id: string;
      scopes?: string[];
      return_url: string;
      /** Values of the provider's per-connection parameters, as in requestConnection. */
      connection_config?: Record<string, string>;
    },
    options: CallOptions = {},
  ): Promise<Omit<RequestConnectionResponse, 'connection_id'>> {
    return this.#transport.request({
      method: 'POST',
      path: '/auth/consent-spec',
      json: input,
      ...call(options),
    });
  }

  checkConnection(connectionId: string, options: CallOptions = {}): Promise<CheckConnectionResponse> {
    return this.#transport.request({
      method: 'GET',
      path: `/v1/check-connection/${enc(connectionId)}`,
      connectionId,
      ...call(options),
    });
  }

  getConnectionToken(connectionId: string, options: CallOptions = {}): Promise<TokenResponse> {
    return this.#transport.request({
      method: 'GET',
      path: `/connections/${enc(connectionId)}/token`,
      connectionId,
      ...call(options),
    });
  }

  refreshConnection(connectionId: string, options: CallOptions = {}): Promise<TokenResponse> {
    return this.#transport.request({
      method: 'POST',
      path: `/connections/${enc(connectionId)}/refresh`,
      idempotent: true,
      connectionId,
      ...call(options),
    });
  }

  resolveConnection(
    workspaceId: string,
    providerName: string,
    options: CallOptions = {},
  ): Promise<TokenResponse> {
    return this.#transport.request({
      method: 'GET',
      path: '/connections/resolve',
      query: { workspace_id: workspaceId, provider_name: providerName },
      ...call(options),
    });
  }

  revokeConnection(
    connectionId: string,
    options: CallOptions & { reason?: string } = {},
  ): Promise<RevokeConnectionResponse> {
    return this.#transport.request({
      method: 'DELETE',
      path: `/connections/${enc(connectionId)}`,
      query: { reason: options.reason },
      connectionId,
      ...call(options),
    });
  }

  /** Connection lifecycle events, newest first, with cursor paging. */
  listConnectionEvents(
    query: ConnectionEventQuery = {},
    options: CallOptions = {},
  ): Promise<{ events: ConnectionEvent[]; next_cursor: string | null }> {
    return this.#transport.request({
      method: 'GET',
      path: '/admin/v1/events',
      query: { ...query },
      ...call(options),
    });
  }

  // Agents

  /** Registers an agent; its client secret (when generated) is in the answer, once. */
  createAgent(input: CreateAgentInput, options: CallOptions = {}): Promise<CreatedAgent> {
    return this.#transport.request({
      method: 'POST',
      path: '/admin/v1/agents',
      json: input,
      ...call(options),
    });
  }

  async listAgents(options: CallOptions = {}): Promise<Agent[]> {
    const { agents } = await this.#transport.request<{ agents: Agent[] }>({
      method: 'GET',
      path: '/admin/v1/agents',
      ...call(options),
    });
    return agents;
  }

  /** One agent, by id or agent_id. */
  getAgent(id: string, options: CallOptions = {}): Promise<Agent> {
    return this.#transport.request({ method: 'GET', path: `/admin/v1/agents/${enc(id)}`, ...call(options) });
  }

  /** Changes an agent; `active: false` deactivates it at once. */
  updateAgent(id: string, patch: UpdateAgentInput, options: IfMatchOptions = {}): Promise<Agent> {
    return this.#transport.request({
      method: 'PATCH',
      path: `/admin/v1/agents/${enc(id)}`,
      json: patch,
      ...ifMatch(options),
      ...call(options),
    });
  }

  deleteAgent(id: string, options: CallOptions = {}): Promise<CreatedResponse> {
    return this.#transport.request({
      method: 'DELETE',
      path: `/admin/v1/agents/${enc(id)}`,
      ...call(options),
    });
  }

  /** Issues a new client secret (returned once); current ones keep working for `overlapSeconds`. */
  rotateAgentSecret(
    id: string,
    options: CallOptions & { overlapSeconds?: number } = {},
  ): Promise<RotatedAgentSecret> {
    return this.#transport.request({
      method: 'POST',
      path: `/admin/v1/agents/${enc(id)}/secrets`,
      json: options.overlapSeconds === undefined ? {} : { overlap_seconds: options.overlapSeconds },
      ...call(options),
    });
  }

  revokeAgentSecret(id: string, secretId: string, options: CallOptions = {}): Promise<MessageResponse> {
    return this.#transport.request({
      method: 'DELETE',
      path: `/admin/v1/agents/${enc(id)}/secrets/${enc(secretId)}`,
      ...call(options),
    });
  }

  // Audit

  /** One page of audit events, newest first. */
  listAuditEvents(query: AuditQuery = {}, options: CallOptions = {}): Promise<AuditPage> {
    return this.#transport.request({ method: 'GET', path: '/audit', query: { ...query }, ...call(options) });
  }

  /** Every audit event matching `query`, newest first, following the cursor page by page. */
  async *auditEvents(query: AuditQuery = {}, options: CallOptions = {}): AsyncGenerator<AuditEvent> {
    let cursor = query.cursor;
    for (;;) {
      const page = await this.listAuditEvents({ ...query, ...(cursor ? { cursor } : {}) }, options);
      yield* page.events;
      if (page.next_cursor === null || page.events.length === 0) return;
      cursor = page.next_cursor;
    }
  }
}
