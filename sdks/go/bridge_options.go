package nexus

// The Bridge, its options and its reconnect policy (see bridge_conn.go).

import (
	"log/slog"
	"time"

	"github.com/gorilla/websocket"
)

// ReconnectPolicy is how a maintained connection waits before it is opened again: attempt
// n (from 0) waits MinBackoff·2ⁿ, at most MaxBackoff, jittered to a random value between
// half and all of it (so many agents dropped at once do not come back in step).
type ReconnectPolicy struct {
	MinBackoff time.Duration // default 1s
	MaxBackoff time.Duration // default 30s
	// ResetAfter: a connection that stayed up this long starts again from MinBackoff
	// (default 1m).
	ResetAfter time.Duration
}

// DefaultReconnectPolicy is used when [WithRetryPolicy] is not given.
var DefaultReconnectPolicy = ReconnectPolicy{MinBackoff: time.Second, MaxBackoff: 30 * time.Second, ResetAfter: time.Minute}

func (p ReconnectPolicy) normalized() ReconnectPolicy {
	if p.MinBackoff <= 0 {
		p.MinBackoff = DefaultReconnectPolicy.MinBackoff
	}
	if p.MaxBackoff < p.MinBackoff {
		p.MaxBackoff = max(p.MinBackoff, DefaultReconnectPolicy.MaxBackoff)
	}
	if p.ResetAfter <= 0 {
		p.ResetAfter = DefaultReconnectPolicy.ResetAfter
	}
	return p
}

// Delay is the wait before attempt n (0 for the first retry).
func (p ReconnectPolicy) Delay(n int) time.Duration {
	p = p.normalized()
	return backoff(n, p.MinBackoff, p.MaxBackoff)
}

// Bridge keeps long-lived WebSocket and gRPC connections authenticated with the
// credentials of Nexus connections. One Bridge may maintain many connections at once.
type Bridge struct {
	tp                 TokenProvider
	clock              Clock
	log                *slog.Logger
	metrics            BridgeMetrics
	policy             ReconnectPolicy
	refreshBuffer      time.Duration
	dialer             *websocket.Dialer
	maxMessage         int64
	writeTimeout       time.Duration
	pingInterval       time.Duration
	reauth             func(*Token) ([]byte, error)
	reconnectOnRefresh bool
	permanentCodes     map[int]bool
	requireTLS         bool
}

// PersistentOption configures a [Bridge].
type PersistentOption func(*Bridge)

// WithLogger sets the structured logger (default: none). Records carry connection_id,
// transport and, for failures, error; never a credential.
func WithLogger(l *slog.Logger) PersistentOption { return func(b *Bridge) { b.log = l } }

// WithRetryPolicy sets how reconnections back off (default [DefaultReconnectPolicy]). For
// gRPC it also sets the channel's own connection backoff.
func WithRetryPolicy(p ReconnectPolicy) PersistentOption {
	return func(b *Bridge) { b.policy = p.normalized() }
}

// WithRefreshBuffer sets how long before expires_at the credential is refreshed (default
// 5 min; never more than half of its remaining life, and at least 5 s after it was read).
func WithRefreshBuffer(d time.Duration) PersistentOption {
	return func(b *Bridge) { b.refreshBuffer = d }
}

// WithDialer sets the WebSocket dialer (default: websocket.DefaultDialer's settings: a
// 45 s handshake timeout, the environment's proxy). Its TLS settings apply to wss://.
func WithDialer(d *websocket.Dialer) PersistentOption { return func(b *Bridge) { b.dialer = d } }

// WithMetrics sets where connection events are counted (default: nowhere; see
// [NewPrometheusMetrics]).
func WithMetrics(m BridgeMetrics) PersistentOption { return func(b *Bridge) { b.metrics = m } }

// WithMessageSizeLimit bounds one message, in bytes, both ways (default 1 MiB). For gRPC it
// sets the largest message a call may send and receive.
func WithMessageSizeLimit(n int64) PersistentOption { return func(b *Bridge) { b.maxMessage = n } }

// WithWriteTimeout bounds each WebSocket write, ping and close (default 10 s); a pong must
// arrive within the ping interval plus this. For gRPC it is the keepalive ping's timeout.
func WithWriteTimeout(d time.Duration) PersistentOption {
	return func(b *Bridge) { b.writeTimeout = d }
}

// WithPingInterval sets how often a ping checks that the peer is still there (default 30 s;
// 0 turns pings off). A WebSocket with no pong (nor any message) for the interval plus the
// write timeout is closed and opened again. For gRPC it is the keepalive time, which grpc-go
// raises to at least 10 s; a server's keepalive policy may refuse pings more frequent than
// it allows (grpc-go servers: one per 5 min by default).
func WithPingInterval(d time.Duration) PersistentOption {
	return func(b *Bridge) { b.pingInterval = d }
}

// WithReauthMessage makes a WebSocket re-authenticate in band instead of reconnecting:
// whenever the credential was refreshed, build's message is sent over the open connection.
// Use it when the server has such a message (its format is the server's); build gets the
// new credential and must not log it.
func WithReauthMessage(build func(*Token) ([]byte, error)) PersistentOption {
	return func(b *Bridge) { b.reauth = build }
}

// WithReconnectOnRefresh says whether a WebSocket is closed (1000) and opened again at once
// when its credential was refreshed and no in-band re-auth is set (default true: a server
// may check a credential's expiry on open connections). false keeps the connection, for
// servers that check the credential only at the handshake; the new credential is used at
// the next connect.
func WithReconnectOnRefresh(reconnect bool) PersistentOption {
	return func(b *Bridge) { b.reconnectOnRefresh = reconnect }
}

// WithPermanentCloseCodes replaces the WebSocket close codes that end MaintainWebSocket
// (default 1002 protocol error, 1003 unsupported data, 1007 invalid payload, 1008 policy
// violation, 1010 missing extension, 3003 and 4403 forbidden).
func WithPermanentCloseCodes(codes ...int) PersistentOption {
	return func(b *Bridge) {
		b.permanentCodes = map[int]bool{}
		for _, c := range codes {
			b.permanentCodes[c] = true
		}
	}
}

// WithGRPCTransportSecurity sets whether gRPC credentials may only travel over TLS (default
// true). false allows plaintext channels: local development and tests only.
func WithGRPCTransportSecurity(require bool) PersistentOption {
	return func(b *Bridge) { b.requireTLS = require }
}

// Close codes a server sends when it refuses the credential of an open connection: the
// bridge refreshes it and connects again (3000 is "Unauthorized" in the IANA registry of
// WebSocket close codes; 4401 is graphql-ws's "Unauthorized").
var unauthorizedCloseCodes = map[int]bool{3000: true, 4401: true}

// NewBridge makes a Bridge that reads credentials from tp (usually the SDK [*Client]).
func NewBridge(tp TokenProvider, opts ...PersistentOption) *Bridge {
	d := *websocket.DefaultDialer
	b := &Bridge{
		tp:                 tp,
		clock:              systemClock{},
		log:                slog.New(slog.DiscardHandler),
		metrics:            nopMetrics{},
		policy:             DefaultReconnectPolicy,
		refreshBuffer:      5 * time.Minute,
		dialer:             &d,
		maxMessage:         1 << 20,
		writeTimeout:       10 * time.Second,
		pingInterval:       30 * time.Second,
		reconnectOnRefresh: true,
		permanentCodes:     map[int]bool{1002: true, 1003: true, 1007: true, 1008: true, 1010: true, 3003: true, 4403: true},
		requireTLS:         true,
	}
	if c, ok := tp.(*Client); ok {
		b.clock = c.t.s.clock
	}
	for _, o := range opts {
		o(b)
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.metrics == nil {
		b.metrics = nopMetrics{}
	}
	if b.dialer == nil {
		b.dialer = &d
	}
	if b.writeTimeout <= 0 {
		b.writeTimeout = 10 * time.Second
	}
	return b
}
