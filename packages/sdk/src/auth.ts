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
  invalidate(_refused?: Record<string, string>): boolean {
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

  /**
   * Logs in now (single-flight: concurrent callers share one request). The shared request is not
   * tied to any caller's abort signal: a caller that aborts stops waiting, the others still get the
   * token. The caller that starts it sets its `timeoutMs` and `retry`.
   */
  login(options: CallOptions = {}): Promise<AgentTokenResponse> {
    const { signal, ...shared } = options;
    if (!this.#pending) {
      const started = this.#transport.config.now();
      const pending = this.#transport
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
          ...shared,
        })
        .then((response) => {
          const lifetime = response.expires_in * 1000;
          const skew = Math.min(AGENT_TOKEN_SKEW_MS, lifetime / 10);
          this.#token = { value: response.access_token, renewAt: started + lifetime - skew, response };
          return response;
        })
        .finally(() => {
          if (this.#pending === pending) this.#pending = undefined;
        });
      // Every waiter may have aborted: the outcome is then nobody's, not an unhandled rejection.
      pending.catch(() => undefined);
      this.#pending = pending;
    }
    return untilAborted(this.#pending, signal);
  }

  async headers(options: CallOptions): Promise<Record<string, string>> {
    const token = this.#token;
    if (token !== undefined && this.#transport.config.now() < token.renewAt)
      return { authorization: `Bearer ${token.value}` };
    const response = await this.login(options);
    return { authorization: `Bearer ${response.access_token}` };
  }

  /**
   * After a 401 for the credential headers `refused`: drops the token only if it is still the one
   * refused (another caller may already have logged in again), so that concurrent 401s cause one login.
   */
  invalidate(refused?: Record<string, string>): boolean {
    const current = this.#token;
    if (
      current !== undefined &&
      (refused === undefined || refused.authorization === `Bearer ${current.value}`)
    )
      this.#token = undefined;
    return true;
  }

  toJSON() {
    return { kind: 'client', clientId: this.#clientId };
  }
}

/** `promise`, or a rejection with the signal's reason as soon as `signal` aborts (the promise goes on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
