package nexus

// The persistent-connection bridge (the original's nexus-bridge): MaintainWebSocket and
// MaintainGRPCConnection keep one long-lived connection authenticated with a Nexus
// connection's credential. This file holds what both share: the Bridge and its options,
// the typed errors, the reconnect policy and the credential each maintained connection
// holds (refreshed ahead of expiry, single-flight, by a background loop).

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"sync/atomic"
	"time"
)

// TokenProvider is where a [Bridge] reads a connection's credential. [*Client] is one.
type TokenProvider interface {
	GetToken(ctx context.Context, connectionID string) (*Token, error)
	RefreshConnection(ctx context.Context, connectionID string) (*Token, error)
}

var _ TokenProvider = (*Client)(nil)

var (
	// ErrMessageTooLarge: a WebSocket message above [WithMessageSizeLimit]. An outgoing one
	// is refused by send (nothing is written, the connection stays); an incoming one ends
	// the connection (close 1009), which is then opened again.
	ErrMessageTooLarge = errors.New("nexus: message exceeds the size limit")
	// ErrNotConnected: send was called after its connection ended.
	ErrNotConnected = errors.New("nexus: connection closed")
	// errCredentialRefreshed ends a WebSocket connection that is opened again at once with
	// a refreshed credential (OnDisconnect receives it).
	errCredentialRefreshed = errors.New("nexus: reconnecting with a refreshed credential")
)

// PermanentError ends MaintainWebSocket or MaintainGRPCConnection: trying again cannot
// help. Err says why and matches the SDK's sentinels with errors.Is: [ErrAttentionRequired]
// (the user must reconnect their account), [ErrNotActive] or [ErrNotFound] (the connection
// was revoked or deleted), [ErrStrategy] (a credential with no form for this transport);
// for a WebSocket close code (1008 policy violation, say) errors.As finds the
// *websocket.CloseError.
type PermanentError struct {
	ConnectionID string
	// Reason is a short, stable description ("attention required", "close code 1008", ...).
	Reason string
	// CloseCode is the WebSocket close code that ended the connection, 0 if none.
	CloseCode int
	Err       error
}

func (e *PermanentError) Error() string {
	return fmt.Sprintf("nexus: connection %s stopped (%s): %v", e.ConnectionID, e.Reason, e.Err)
}

func (e *PermanentError) Unwrap() error { return e.Err }

// permanentCredentialError reports whether a credential failure means no later attempt can
// succeed: the grant is gone (attention_required), the connection is not active any more
// (revoked, expired), unknown, not the agent's to use, or its credential cannot be applied.
// An unreachable or failing broker, a rate limit, a refresh in progress are temporary.
func permanentCredentialError(err error) bool {
	for _, s := range []error{ErrAttentionRequired, ErrNotActive, ErrNotFound, ErrForbidden, ErrUnauthorized, ErrBadRequest, ErrStrategy} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func credentialReason(err error) string {
	switch {
	case errors.Is(err, ErrAttentionRequired):
		return "attention required"
	case errors.Is(err, ErrNotActive):
		return "connection not active"
	case errors.Is(err, ErrNotFound):
		return "connection not found"
	case errors.Is(err, ErrStrategy):
		return "strategy not applicable"
	}
	return "credential refused by the broker"
}

// heldCredential is the credential of one maintained connection: cached until shortly
// before it expires, refreshed once however many users (gRPC calls, the refresh loop) want
// it at the same moment.
type heldCredential struct {
	b            *Bridge
	connectionID string
	transport    string // "websocket" | "grpc", for metrics
	cache        flightCache[*Token]
	// rereadNext makes the next fetch read the credential (GetToken) instead of refreshing it.
	rereadNext atomic.Bool
}

func (b *Bridge) hold(connectionID, transport string) *heldCredential {
	h := &heldCredential{b: b, connectionID: connectionID, transport: transport}
	h.cache = flightCache[*Token]{clock: b.clock, fetch: h.fetch, keep: keepCredential}
	return h
}

// fetch reads the credential the first time; later (ahead of expiry, or after the server
// refused it) makes the broker refresh an OAuth one, or reads a static one again.
func (h *heldCredential) fetch(ctx context.Context, reason fetchReason, prev *Token) (*Token, time.Time, error) {
	var tok *Token
	var err error
	reread := h.rereadNext.Swap(false)
	if !reread && reason != fetchInitial && prev != nil && prev.Strategy.Type == StrategyOAuth2 {
		tok, err = h.b.tp.RefreshConnection(ctx, h.connectionID)
		var e *Error
		if errors.As(err, &e) && e.Code == CodeRefreshNotSupported {
			tok, err = h.b.tp.GetToken(ctx, h.connectionID)
		}
	} else {
		tok, err = h.b.tp.GetToken(ctx, h.connectionID)
	}
	if reason != fetchInitial && !reread {
		result := "ok"
		if err != nil {
			result = "error"
		}
		h.b.metrics.IncTokenRefreshes(h.transport, result)
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	now := h.b.clock.Now()
	if tok.ExpiresAt == nil {
		return tok, now.Add(5 * time.Minute), nil
	}
	return tok, freshUntil(now, *tok.ExpiresAt, h.b.refreshBuffer), nil
}

func (h *heldCredential) current(ctx context.Context) (*Token, uint64, error) {
	return h.cache.get(ctx, nil)
}

// refused returns a credential to use after the one of generation gen was refused by the
// server: refreshed, unless a newer one is already there.
func (h *heldCredential) refused(ctx context.Context, gen uint64) (*Token, uint64, error) {
	return h.cache.get(ctx, &gen)
}

// reread reads the credential from the broker again (GetToken, not a refresh): before a
// connection is opened again after a drop, so that a connection revoked meanwhile stops the
// loop instead of being used with a cached credential. If the broker cannot be reached, a
// still-valid cached credential is used (keepCredential).
func (h *heldCredential) reread(ctx context.Context) (*Token, uint64, error) {
	h.rereadNext.Store(true)
	h.cache.invalidate()
	return h.cache.get(ctx, nil)
}

// nextRefresh is when the cached credential stops being fresh.
func (h *heldCredential) nextRefresh() time.Time {
	h.cache.mu.Lock()
	defer h.cache.mu.Unlock()
	return h.cache.freshUntil
}

// refreshLoop refreshes the credential ahead of its expiry until ctx ends, calling changed
// with each credential that differs from the one before (a static credential read again
// unchanged is not a change). It returns only a permanent failure (or ctx's error): a
// temporary one keeps the still-valid credential and is tried again (keepCredential).
func (h *heldCredential) refreshLoop(ctx context.Context, last *Token, changed func(*Token)) error {
	log := h.b.log.With("connection_id", h.connectionID, "transport", h.transport)
	for {
		wait := max(h.nextRefresh().Sub(h.b.clock.Now()), 50*time.Millisecond)
		if err := sleepCtx(ctx, wait); err != nil {
			return err
		}
		tok, _, err := h.current(ctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && permanentCredentialError(err):
			log.Error("credential refresh failed for good", "error", err)
			return err
		case err != nil:
			log.Warn("credential refresh failed; trying again", "error", err)
			if err := sleepCtx(ctx, staleRetryInterval); err != nil {
				return err
			}
		case !sameCredential(last, tok):
			log.Info("credential refreshed", "expires_at", tok.ExpiresAt)
			last = tok
			changed(tok)
		}
	}
}

// sameCredential reports whether two tokens apply the same credential.
func sameCredential(a, b *Token) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Strategy.Type == b.Strategy.Type && a.AccessToken == b.AccessToken &&
		maps.Equal(a.Credentials, b.Credentials) && maps.Equal(a.Strategy.Config, b.Strategy.Config)
}

// redactedURL is a URL for logs: no query (a query_param credential goes there) and no
// user information.
func redactedURL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return r.String()
}
