/**
 * Credentials towards the broker: an admin API key (`X-API-Key`), or an agent's client credentials
 * exchanged at `POST /oauth/token` (RFC 6749 §4.4) for a bearer token that is renewed shortly
 * before it expires and after the broker refuses it.
 */
import type { Credential } from './config.ts';
import type { Authorizer, CallOptions, Transport } from './http.ts';
import type { AgentTokenResponse } from './types.ts';

export class ApiKeyAuth implements Authorizer {
  readonly #apiKey: string;
  constructor(apiKey: string) {
    this.#apiKey = apiKey;
  }
  async headers(): Promise<Record<string, string>> {
    return { 'x-api-key': this.#apiKey };
  }
  invalidate(): boolean {
    return false;
  }
  toJSON() {
    return { kind: 'apiKey' };
  }
}

/** Renew this long before the broker's `expires_in` ends (or a tenth of the lifetime if shorter). */
export const AGENT_TOKEN_SKEW_MS = 30_000;

export class AgentAuth implements Authorizer {
  readonly #transport: Transport;
  readonly #clientId: string;
  readonly #clientSecret: string;
  readonly #scope: string | undefined;
  #token: { value: string; renewAt: number; response: AgentTokenResponse } | undefined;
  #pending: Promise<AgentTokenResponse> | undefined;

  constructor(transport: Transport, credential: Extract<Credential, { kind: 'client' }>) {
    this.#transport = transport;
    this.#clientId = credential.clientId;
    this.#clientSecret = credential.clientSecret;
    this.#scope = credential.scope;
  }

  get clientId(): string {
    return this.#clientId;
  }

  /** Logs in now (single-flight: concurrent callers share one request). */
  login(options: CallOptions = {}): Promise<AgentTokenResponse> {
    if (this.#pending) return this.#pending;
    const started = this.#transport.config.now();
    this.#pending = this.#transport
      .request<AgentTokenResponse>({
        method: 'POST',
        path: '/oauth/token',
        auth: false,
        idempotent: true,
        form: {
          grant_type: 'client_credentials',
          client_id: this.#clientId,
          client_secret: this.#clientSecret,
          scope: this.#scope,
        },
        ...options,
      })
      .then((response) => {
        const lifetime = response.expires_in * 1000;
        const skew = Math.min(AGENT_TOKEN_SKEW_MS, lifetime / 10);
        this.#token = { value: response.access_token, renewAt: started + lifetime - skew, response };
        return response;
      })
      .finally(() => {
        this.#pending = undefined;
      });
    return this.#pending;
  }

  async headers(options: CallOptions): Promise<Record<string, string>> {
    if (this.#token === undefined || this.#transport.config.now() >= this.#token.renewAt)
      await this.login(options);
    return { authorization: `Bearer ${this.#token!.value}` };
  }

  invalidate(): boolean {
    this.#token = undefined;
    return true;
  }

  toJSON() {
    return { kind: 'client', clientId: this.#clientId };
  }
}
