/**
 * @nexus-broker/sdk: the TypeScript SDK of the Nexus credential broker.
 *
 * - `NexusClient`: the agent-facing API (connections, tokens, agent sessions, user secrets).
 * - `NexusAdmin`: the operator API (providers, connections, agents, audit).
 * - `createBridgeFetch`: a `fetch` that applies a connection's credential to upstream requests.
 * - `maintainWebSocket`: a long-lived WebSocket kept authenticated with a connection's credential.
 */
export {
  type ConnectionEvent,
  type ConnectionEventQuery,
  type IfMatchOptions,
  NexusAdmin,
  type NexusAdminOptions,
} from './admin.ts';
export {
  type BridgeFetch,
  type BridgeOptions,
  type BridgeTarget,
  createBridgeFetch,
  DEFAULT_BROKER_RETRY,
  DEFAULT_SKEW_MS,
  type FetchLike,
} from './bridge.ts';
export {
  NexusClient,
  type NexusClientOptions,
  type ResolveSecretsOptions,
  SESSION_HEADER,
  type SecretOwnerOptions,
  type WaitForActiveOptions,
} from './client.ts';
export {
  type CommonOptions,
  DEFAULT_BASE_URL,
  DEFAULT_RETRY,
  DEFAULT_TIMEOUT_MS,
  type RetryEvent,
  type RetryOptions,
} from './config.ts';
export type * from './consent-types.ts';
export {
  AttentionRequiredError,
  AuthenticationError,
  BrokerUnavailableError,
  ConfigurationError,
  ConflictError,
  InvalidRequestError,
  NexusError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitedError,
  ServerError,
  StrategyError,
  UnprocessableError,
  UnresolvedSecretsError,
} from './errors.ts';
export type { CallOptions } from './http.ts';
export {
  type BridgeLogger,
  type BridgeMetrics,
  DEFAULT_RECONNECT_POLICY,
  type DisconnectReason,
  type LogLevel,
  PermanentConnectionError,
  type ReconnectPolicy,
  type TokenProvider,
} from './persistent.ts';
export { findSecretReferences, replaceSecretReferences, SECRET_REFERENCE_PREFIX } from './secrets.ts';
export { NodeSha256 } from './sigv4.ts';
export { applyStrategy, type OutgoingRequest } from './strategies.ts';
export type * from './types.ts';
export {
  DEFAULT_PERMANENT_CLOSE_CODES,
  type MaintainWebSocketOptions,
  maintainWebSocket,
} from './websocket.ts';
export {
  CredentialRefreshedError,
  CredentialRefusedError,
  HandshakeError,
  MessageTooLargeError,
  NotConnectedError,
  type SendFunction,
  WebSocketCloseError,
  type WebSocketHandler,
} from './websocket-session.ts';
