// Package nexus is the Go client of the Nexus credential broker.
//
// It has three parts:
//
//   - [Client], the agent-facing API: start and check connections, fetch and refresh
//     credentials, agent sessions (plain and on-behalf-of), user secrets and the
//     nexus-secret:NAME resolver. It authenticates with an admin API key or as an
//     agent (OAuth client credentials, logging in again before the token expires).
//   - [Admin], the operator API: providers, connections, agents and the audit log.
//   - The bridge: [Transport] (an [net/http.RoundTripper]) and [PerRPCCredentials]
//     (a gRPC credentials.PerRPCCredentials) apply a connection's credential to
//     outgoing requests for every strategy the broker hands out (oauth2, header,
//     query_param, basic_auth, hmac_payload, aws_sigv4), caching it until shortly
//     before it expires and refreshing it once however many requests wait.
//   - Long-lived connections: [Bridge.MaintainWebSocket] and [Bridge.MaintainGRPCConnection]
//     keep a WebSocket or a gRPC channel authenticated for hours (refresh before expiry,
//     reconnection with backoff, typed permanent errors, Prometheus metrics).
//
// Every call takes a [context.Context] first. Configuration comes from options, then
// the environment (NEXUS_URL, NEXUS_API_KEY, NEXUS_CLIENT_ID, NEXUS_CLIENT_SECRET),
// then defaults. Errors from the broker are [*Error] values that match the sentinel
// errors ([ErrNotFound], [ErrAttentionRequired], ...) with [errors.Is].
package nexus
