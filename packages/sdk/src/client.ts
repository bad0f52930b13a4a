/**
 * `NexusClient`: the agent-facing API of the broker (`/v1/...`, agent sessions, user secrets),
 * authenticated as an agent (client credentials, renewed automatically) or with an API key.
 */
import { AgentAuth, ApiKeyAuth } from './auth.ts';
import { type CommonOptions, resolveAgentCredential, resolveCommon } from './config.ts';
import type {
  ConfirmConnectionResponse,
  ConnectSession,
  ConnectSessionInput,
  RequestConnectionInput,
  RequestConnectionResponse,
} from './consent-types.ts';
import {
  AttentionRequiredError,
  attentionMessage,
  ConfigurationError,
  NexusError,
  UnresolvedSecretsError,
} from './errors.ts';
import { type CallOptions, sleep, Transport } from './http.ts';
import { findSecretReferences, replaceSecretReferences } from './secrets.ts';
import type {
  AgentSession,
  AgentSessionInput,
  AgentTokenResponse,
  CheckConnectionResponse,
  OboSessionInput,
  OpenedAgentSession,
  ProviderMetadata,
  ResolveSecretsResponse,
  RevokeConnectionResponse,
  TokenResponse,
  UserSecretValue,
} from './types.ts';

export interface NexusClientOptions extends CommonOptions {
  /** Agent client id (its `agent_id`). Env `NEXUS_CLIENT_ID`. */
  clientId?: string;
  /** Agent client secret. Env `NEXUS_CLIENT_SECRET`. */
  clientSecret?: string;
  /** Scopes to ask for at agent login (space-separated); default: the agent's. */
  scope?: string;
  /** An admin API key instead of agent credentials. Env `NEXUS_API_KEY`. */
  apiKey?: string;
}

export interface WaitForActiveOptions extends CallOptions {
  /** Time between checks. Default 2 s. */
  intervalMs?: number;
  /** Give up after this long. Default 5 minutes. */
  waitTimeoutMs?: number;
}

/** Whose secrets a read reaches; see the broker's user-secrets routes. */
export interface SecretOwnerOptions extends CallOptions {
  /** The owning user; required with an API key, or with an agent grant (`allowed_secrets`). */
  userId?: string;
  /** Default `default`. */
  zone?: string;
  /** An on-behalf-of session token: read the secrets of the user the session acts for. */
  sessionToken?: string;
}

export interface ResolveSecretsOptions extends SecretOwnerOptions {
  /** Keep unresolvable references in place instead of throwing UnresolvedSecretsError. */
  leaveUnresolved?: boolean;
}

export const SESSION_HEADER = 'x-nexus-session';

const enc = encodeURIComponent;

export class NexusClient {
  readonly #transport: Transport;
  readonly #agent: AgentAuth | undefined;
  readonly #usesApiKey: boolean;

  /**
   * Reads options, then `NEXUS_URL`, `NEXUS_CLIENT_ID` / `NEXUS_CLIENT_SECRET` or `NEXUS_API_KEY`.
   * Throws ConfigurationError when no credential is found.
   */
  constructor(options: NexusClientOptions = {}) {
    const common = resolveCommon(options);
    const credential = resolveAgentCredential(options);
    this.#transport = new Transport(common);
    if (credential.kind === 'client') {
      this.#agent = new AgentAuth(this.#transport, credential);
      this.#transport.setAuthorizer(this.#agent);
    } else {
      this.#transport.setAuthorizer(new ApiKeyAuth(credential.apiKey));
    }
    this.#usesApiKey = credential.kind === 'apiKey';
  }

  /** The broker base URL in use. */
  get baseUrl(): string {
    return this.#transport.config.baseUrl;
  }

  /** The clock the client (and bridges built on it) use, in ms since the epoch. */
  get now(): () => number {
    return this.#transport.config.now;
  }

  /**
   * Agent login (client credentials at `POST /oauth/token`). Called automatically before the first
   * call and again shortly before the token expires or after the broker refuses it.
   */
  agentLogin(options: CallOptions = {}): Promise<AgentTokenResponse> {
    if (!this.#agent)
      return Promise.reject(
        new ConfigurationError(
          'agentLogin needs agent credentials (clientId and clientSecret), not an API key.',
        ),
      );
    return this.#agent.login(options);
  }

  /** Starts a consent: a pending connection and the URL to send the user to. */
  requestConnection(
    input: RequestConnectionInput,
    options: CallOptions = {},
  ): Promise<RequestConnectionResponse> {
    return this.#transport.request({
      method: 'POST',
      path: '/v1/request-connection',
      json: input,
      ...options,
    });
  }

  /**
   * A hosted connect page for one user: a short-lived, single-use URL where the user picks a
   * provider among `providers`, consents or types the credentials, and returns to `return_url`.
   */
  createConnectSession(input: ConnectSessionInput, options: CallOptions = {}): Promise<ConnectSession> {
    return this.#transport.request({ method: 'POST', path: '/v1/connect-sessions', json: input, ...options });
  }

  /**
   * From your verifier page (a connection requested with `verify`): confirms that `userId`, the
   * user signed in to your application, is the one the connection was asked for. The same user:
   * the connection activates; another: it fails with `user_mismatch` and nothing is kept. Send the
   * browser to `redirect_url` either way. A `flowId` works once (409 `confirm_flow_used`).
   */
  confirmConnection(
    flowId: string,
    userId: string,
    options: CallOptions = {},
  ): Promise<ConfirmConnectionResponse> {
    return this.#transport.request({
      method: 'POST',
      path: '/v1/connect/confirm',
      json: { flow_id: flowId, user_id: userId },
      ...options,
    });
  }

  /** The stored state of a connection (`pending`, `active`, `attention_required`, …). */
  checkConnection(connectionId: string, options: CallOptions = {}): Promise<CheckConnectionResponse> {
    return this.#transport.request({
      method: 'GET',
      path: `/v1/check-connection/${enc(connectionId)}`,
      connectionId,
      ...options,
    });
  }

  /**
   * Polls until the connection is active. Throws AttentionRequiredError when the user must reconnect,
   * a NexusError (`connection_failed`, `connection_expired`, `connection_revoked`) on the other end
   * states, and a NexusError `wait_timeout` after `waitTimeoutMs`.
   */
  async waitForActive(
    connectionId: string,
    options: WaitForActiveOptions = {},
  ): Promise<CheckConnectionResponse> {
    const { intervalMs = 2000, waitTimeoutMs = 300_000, ...call } = options;
    const deadline = Date.now() + waitTimeoutMs;
    for (;;) {
      const result = await this.checkConnection(connectionId, call);
      if (result.status === 'active') return result;
      if (result.status === 'attention_required')
        throw new AttentionRequiredError(attentionMessage(connectionId), {
          code: 'attention_required',
          connectionId,
        });
      if (result.status !== 'pending')
        throw new NexusError(`Connection ${connectionId} is ${result.status}; it will not become active.`, {
          code: `connection_${result.status}`,
        });
      if (Date.now() + intervalMs > deadline)
        throw new NexusError(
          `Connection ${connectionId} was still pending after ${waitTimeoutMs} ms (the user has not finished consent).`,
          { code: 'wait_timeout' },
        );
      await sleep(intervalMs, call.signal);
    }
  }

  /** A usable credential and the strategy to apply it (the broker refreshes first when expiring). */
  getToken(connectionId: string, options: CallOptions = {}): Promise<TokenResponse> {
    return this.#transport.request({
      method: 'GET',
      path: `/v1/token/${enc(connectionId)}`,
      connectionId,
      ...options,
    });
  }

  /** Forces a refresh with the provider (single-flight at the broker), answered like getToken. */
  refreshConnection(connectionId: string, options: CallOptions = {}): Promise<TokenResponse> {
    return this.#transport.request({
      method: 'POST',
      path: `/v1/refresh/${enc(connectionId)}`,
      idempotent: true,
      connectionId,
      ...options,
    });
  }

  /** The newest active connection of a workspace for a provider, answered like getToken. */
  resolveToken(workspaceId: string, providerName: string, options: CallOptions = {}): Promise<TokenResponse> {
    return this.#transport.request({
      method: 'GET',
      path: '/v1/resolve',
      query: { workspace_id: workspaceId, provider_name: providerName },
      ...options,
    });
  }

  /** Revokes a connection (best-effort at the provider, then locally); idempotent. */
  revokeConnection(
    connectionId: string,
    options: CallOptions & { reason?: string } = {},
  ): Promise<RevokeConnectionResponse> {
    const { reason, ...call } = options;
    return this.#transport.request({
      method: 'DELETE',
      path: `/v1/connections/${enc(connectionId)}`,
      query: { reason },
      connectionId,
      ...call,
    });
  }

  /** Providers this caller can request, grouped by auth type. */
  listProviders(options: CallOptions = {}): Promise<ProviderMetadata> {
    return this.#transport.request({ method: 'GET', path: '/v1/providers', ...options });
  }

  /** Opens a bounded agent session (scopes within the agent's allowed scopes; TTL bounded). */
  requestAgentSession(input: AgentSessionInput, options: CallOptions = {}): Promise<OpenedAgentSession> {
    return this.#transport.request({ method: 'POST', path: '/v1/agent-sessions', json: input, ...options });
  }

  /** Opens an on-behalf-of session from a user's token issued by a trusted issuer. */
  requestOboSession(input: OboSessionInput, options: CallOptions = {}): Promise<OpenedAgentSession> {
    return this.#transport.request({
      method: 'POST',
      path: '/v1/agent-sessions/obo',
      json: input,
      ...options,
    });
  }

  getAgentSession(sessionId: string, options: CallOptions = {}): Promise<AgentSession> {
    return this.#transport.request({
      method: 'GET',
      path: `/v1/agent-sessions/${enc(sessionId)}`,
      ...options,
    });
  }

  /** Closes a session: its session token fails introspection from now on. */
  closeAgentSession(sessionId: string, options: CallOptions = {}): Promise<AgentSession> {
    return this.#transport.request({
      method: 'DELETE',
      path: `/v1/agent-sessions/${enc(sessionId)}`,
      ...options,
    });
  }

  /** Reads one user secret (current version, or `version`). Audited by the broker. */
  getSecret(name: string, options: SecretOwnerOptions & { version?: number } = {}): Promise<UserSecretValue> {
    const { userId, zone, sessionToken, version, ...call } = options;
    return this.#transport.request({
      method: 'GET',
      path: `/api/v2/secrets/${enc(name)}`,
      query: { user_id: userId, zone, version },
      ...(sessionToken === undefined ? {} : { headers: { [SESSION_HEADER]: sessionToken } }),
      ...call,
    });
  }

  /**
   * Returns a copy of `config` with every `nexus-secret:NAME` string (in nested objects and arrays)
   * replaced by the secret's value. With an API key or an on-behalf-of `sessionToken` the broker
   * resolves everything in one round trip; an agent reading through `allowed_secrets` grants reads
   * each distinct name once. Throws UnresolvedSecretsError (names only) unless `leaveUnresolved`.
   */
  async resolveSecrets<T>(config: T, options: ResolveSecretsOptions = {}): Promise<T> {
    const { userId, zone, sessionToken, leaveUnresolved = false, ...call } = options;
    const names = findSecretReferences(config);
    if (names.length === 0) return config;
    if (this.#usesApiKey || sessionToken !== undefined) {
      const result = await this.#transport.request<ResolveSecretsResponse<T>>({
        method: 'POST',
        path: '/api/v2/secrets/resolve',
        query: { user_id: userId, zone },
        json: { config, leave_unresolved: leaveUnresolved },
        ...(sessionToken === undefined ? {} : { headers: { [SESSION_HEADER]: sessionToken } }),
        ...call,
      });
      return result.config;
    }
    const values = new Map<string, string>();
    const unresolved: { name: string; reason: string }[] = [];
    for (const name of names) {
      try {
        const secret = await this.getSecret(name, {
          ...call,
          ...(userId ? { userId } : {}),
          ...(zone ? { zone } : {}),
        });
        values.set(name, secret.value);
      } catch (error) {
        if (!(error instanceof NexusError) || (error.status !== 404 && error.status !== 409)) throw error;
        unresolved.push({ name, reason: error.code === 'user_secret_disabled' ? 'disabled' : 'not_found' });
      }
    }
    if (unresolved.length > 0 && !leaveUnresolved)
      throw new UnresolvedSecretsError(
        `Some secret references could not be resolved: ${unresolved.map((u) => `${u.name} (${u.reason})`).join(', ')}.`,
        { status: 422, code: 'unresolved_secrets', unresolved },
      );
    return replaceSecretReferences(config, values);
  }

  /** @internal The transport, for the bridge. */
  get transport(): Transport {
    return this.#transport;
  }

  toJSON() {
    return { baseUrl: this.baseUrl, credential: this.#agent ? this.#agent.toJSON() : { kind: 'apiKey' } };
  }
}
