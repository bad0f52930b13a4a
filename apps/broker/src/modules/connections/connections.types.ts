import type { TokenEndpointResponse } from 'oauth4webapi';
import type { Strategy } from '../strategies/strategy.ts';

/**
 * The connections module's shared vocabulary: what the service, the credential store, the
 * refresher and the modules around them (consent, housekeeping, the worker, import, keys) name.
 * Types and constants only, so that any file of the module may import it without a cycle.
 */

/**
 * What the vault keeps for a connection: sealed in `connections.credentials`, or in the secret
 * backend with `TOKEN_STORE=secret-backend` (`credential-store.ts`).
 */
export type StoredCredentials =
  | { kind: 'oauth2'; access_token: string; token_type: string; refresh_token?: string; scope?: string }
  | { kind: 'static'; fields: Record<string, string> };

/** The binding of a connection's sealed credentials: a ciphertext moved to another row does not open. */
export const credentialsBinding = (id: string) => ({ table: 'connections', id, field: 'credentials' });

/** The v1 token answer: never a refresh token, client secret or verifier. */
export interface TokenResponse {
  connection_id: string;
  provider_id: string;
  provider_name: string;
  strategy: Strategy;
  credentials: Record<string, string>;
  expires_at: string | null;
  access_token?: string;
  token_type?: string;
  expiry?: string | null;
  /** The values of the provider's URL placeholders (decision 0015); absent when it has none. */
  connection_config?: Record<string, string>;
}

/** Connection state changes the broker reports as events (stored, and sent to webhooks). */
export type ConnectionEventType =
  | 'connection.active'
  | 'connection.attention_required'
  | 'connection.expired'
  | 'connection.revoked'
  | 'connection.refresh_failed'
  | 'connection.refresh_recovered';

export interface ConnectionEventSink {
  emit(event: {
    connectionId: string;
    workspaceId: string;
    providerId: string;
    type: ConnectionEventType;
    details?: Record<string, unknown>;
  }): Promise<void>;
}

export const noEvents: ConnectionEventSink = { emit: async () => {} };

/** What one background refresh of a claimed connection came to. */
export type RefreshOutcome = 'refreshed' | 'attention_required' | 'failed' | 'skipped';

/**
 * What a completed consent hands to `ConnectionsService.activate`: the provider's token answer of
 * an authorization-code exchange, or the static fields a user typed into the capture form.
 */
export type ActivationTokens =
  | {
      readonly kind: 'oauth2';
      readonly tokens: TokenEndpointResponse;
      /**
       * The connection's values with those learnt from this token answer added (decision 0015),
       * stored as its `connection_config`; absent: the stored values stay.
       */
      readonly connectionConfig?: Readonly<Record<string, string>> | undefined;
    }
  | { readonly kind: 'static'; readonly fields: Record<string, string> };
