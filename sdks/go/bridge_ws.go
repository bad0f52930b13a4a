package nexus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// WebSocketHandler receives the events of a connection maintained by
// [Bridge.MaintainWebSocket]. Each established connection gets one OnConnect, then its
// messages, then one OnDisconnect.
type WebSocketHandler interface {
	// OnConnect is called when a connection is established, before its first OnMessage,
	// with a send function bound to that connection. send may be kept and called from any
	// goroutine; it returns once the message was written, [ErrMessageTooLarge] (nothing
	// written) above the size limit, or [ErrNotConnected] once the connection has ended.
	// A message that is valid UTF-8 goes as a text frame, any other as a binary frame (RFC
	// 6455 §5.6 requires text frames to be UTF-8). OnConnect must return promptly.
	OnConnect(send func(message []byte) error)
	// OnMessage is called for each message received, in order, from one goroutine.
	OnMessage(message []byte)
	// OnDisconnect is called once the connection has ended, after its last OnMessage.
	OnDisconnect(err error)
}

// refusedCredential: the server refused the credential (a handshake answered 401 or 403, a
// close code 3000 or 4401). The credential is refreshed before the next attempt.
type refusedCredential struct {
	status    int // handshake status, or 0
	closeCode int // close code, or 0
	err       error
}

func (e *refusedCredential) Error() string {
	if e.status != 0 {
		return fmt.Sprintf("nexus: the server refused the credential (handshake answered %d)", e.status)
	}
	return fmt.Sprintf("nexus: the server refused the credential (close code %d): %v", e.closeCode, e.err)
}

func (e *refusedCredential) Unwrap() error { return e.err }

// MaintainWebSocket keeps a WebSocket to endpointURL (ws:// or wss://) open with the
// credential of a Nexus connection, until ctx ends (it returns ctx's error, after a
// close handshake with code 1000) or a permanent failure (a [*PermanentError]).
//
//   - The credential is applied to the handshake request: oauth2 (Authorization: Bearer),
//     header, headers, query_param, basic_auth, and aws_sigv4 (the handshake is a GET signed like any
//     other, as AWS API Gateway's WebSocket APIs expect). hmac_payload is refused
//     ([ErrStrategy]): it signs a request body and a handshake has none, so its signature
//     would be a constant that anyone who saw it could replay.
//   - Before the credential expires (WithRefreshBuffer) it is refreshed. The connection
//     then re-authenticates in band when [WithReauthMessage] is set; otherwise it is closed
//     (1000) and opened again at once with the new credential ([WithReconnectOnRefresh]).
//   - A handshake answered 401 or 403, or a close code 3000 or 4401, means the server
//     refused the credential: it is refreshed and the connection opened again (at once the
//     first time, then with backoff).
//   - Other failures (the network, 5xx, 408, 429, other close codes, a missing pong, an
//     incoming message above the size limit) reconnect with exponential backoff and jitter
//     ([WithRetryPolicy]).
//   - Permanent: the broker says the grant needs the user (attention_required), the
//     connection is revoked or unknown, the strategy cannot apply, a handshake answered
//     another 4xx, or a permanent close code ([WithPermanentCloseCodes]; 1008 by default).
func (b *Bridge) MaintainWebSocket(ctx context.Context, connectionID, endpointURL string, handler WebSocketHandler) error {
	u, err := url.Parse(endpointURL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return &PermanentError{ConnectionID: connectionID, Reason: "invalid endpoint", Err: errors.New("nexus: the endpoint must be a ws:// or wss:// URL")}
	}
	h := b.hold(connectionID, "websocket")
	log := b.log.With("connection_id", connectionID, "transport", "websocket", "endpoint", redactedURL(u))
	attempt := 0
	refusedBefore := false // the previous attempt's credential was refused too
	reread := false        // read the credential from the broker again before the next dial
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		start := time.Now()
		connected := false
		read := h.current
		if reread {
			read = h.reread
		}
		tok, gen, err := read(ctx)
		if err == nil {
			connected, err = b.wsConnection(ctx, h, u, tok, handler, log)
		} else if permanentCredentialError(err) {
			err = &PermanentError{ConnectionID: connectionID, Reason: credentialReason(err), Err: err}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var perm *PermanentError
		var refused *refusedCredential
		now := false
		switch {
		case errors.As(err, &perm):
			perm.ConnectionID = connectionID
			log.Error("stopped: this connection cannot be maintained", "error", err)
			return err
		case errors.Is(err, errCredentialRefreshed):
			now, refusedBefore, reread = true, false, false
		case errors.As(err, &refused):
			next, _, rerr := h.refused(ctx, gen)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if rerr != nil && permanentCredentialError(rerr) {
				err = &PermanentError{ConnectionID: connectionID, Reason: credentialReason(rerr), Err: rerr}
				log.Error("stopped: the server refused the credential and the broker has no other", "error", err)
				return err
			}
			// A refreshed credential is tried at once, unless the one before was refused just
			// as quickly: then with backoff (the broker does not refresh again right away).
			quick := !connected || time.Since(start) < b.policy.MinBackoff
			now = rerr == nil && !sameCredential(next, tok) && !(refusedBefore && quick)
			refusedBefore, reread = true, false
		default:
			reread = true
			if connected {
				refusedBefore = false
			}
		}
		if connected && time.Since(start) >= b.policy.ResetAfter {
			attempt = 0
		}
		if now {
			log.Info("reconnecting with a refreshed credential", "reason", err)
			continue
		}
		wait := b.policy.Delay(attempt)
		attempt++
		log.Warn("reconnecting", "after", wait, "attempt", attempt, "error", err)
		if err := sleepCtx(ctx, wait); err != nil {
			return err
		}
	}
}

// wsConnection dials once with tok and, once connected, runs the connection until it ends.
func (b *Bridge) wsConnection(ctx context.Context, h *heldCredential, u *url.URL, tok *Token, handler WebSocketHandler, log *slog.Logger) (connected bool, err error) {
	if tok.Strategy.Type == StrategyHMACPayload {
		return false, &PermanentError{Reason: "strategy not applicable", Err: strategyError(
			"hmac_payload signs a request body and a WebSocket handshake has none: its signature would be a replayable constant")}
	}
	// The handshake is an HTTP GET: the strategy applies to it as to any request.
	hu := *u
	hu.Scheme = map[string]string{"ws": "http", "wss": "https"}[u.Scheme]
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hu.String(), nil)
	if err != nil {
		return false, &PermanentError{Reason: "invalid endpoint", Err: err}
	}
	if err := ApplyStrategy(ctx, tok, req, nil, time.Time{}); err != nil {
		return false, &PermanentError{Reason: "strategy not applicable", Err: err}
	}
	du := *req.URL
	du.Scheme = u.Scheme
	conn, resp, err := b.dialer.DialContext(ctx, du.String(), req.Header)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp == nil {
			return false, fmt.Errorf("nexus: WebSocket dial: %w", err)
		}
		switch s := resp.StatusCode; {
		case s == http.StatusUnauthorized || s == http.StatusForbidden:
			return false, &refusedCredential{status: s}
		case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
			return false, fmt.Errorf("nexus: WebSocket handshake answered %d", s)
		default:
			return false, &PermanentError{Reason: fmt.Sprintf("handshake answered %d", s), Err: fmt.Errorf("nexus: WebSocket handshake answered %d", s)}
		}
	}
	b.metrics.IncConnections("websocket")
	b.metrics.SetConnectionStatus("websocket", h.connectionID, true)
	log.Info("connected")
	reason, err := b.wsSession(ctx, h, conn, tok, handler, log)
	b.metrics.SetConnectionStatus("websocket", h.connectionID, false)
	b.metrics.IncDisconnects("websocket", reason)
	log.Info("disconnected", "reason", reason, "error", err)
	return true, err
}
