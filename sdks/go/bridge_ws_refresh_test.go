package nexus

// MaintainWebSocket when the credential expires: refused by the server (close 3000), or
// refreshed ahead of expiry in band or by reconnecting. Tokens are made short-lived by the
// testbed (/connect with token_ttl), and its servers enforce the expiry.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The server refuses a token it was told has expired (close 3000): the bridge has the
// broker refresh it at the provider and connects again at once with the new one.
func TestMaintainWebSocketServerSideExpiry(t *testing.T) {
	id, _ := connect(t, StrategyOAuth2)
	lbl := label(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	rec := &wsRecorder{}
	reg := prometheus.NewRegistry()
	metrics, _ := NewPrometheusMetrics(reg, nil)
	b := NewBridge(agentClient(t), WithRetryPolicy(ReconnectPolicy{MinBackoff: 2 * time.Second, MaxBackoff: 4 * time.Second}), WithMetrics(metrics))
	m := maintain(func() error { return b.MaintainWebSocket(ctx, id, wsEndpoint(t, StrategyOAuth2, lbl), rec) })
	eventually(t, 20*time.Second, "welcome", func() bool { return rec.welcomes() == 1 })
	before := llStats(t).IDP.RefreshToken

	var ended struct{ Ended int }
	start := time.Now()
	control(t, http.MethodPost, "/idp/expire", map[string]any{"connection_id": id}, &ended)
	if ended.Ended != 1 {
		t.Fatalf("the server ended %d sessions", ended.Ended)
	}
	eventually(t, 20*time.Second, "a connection with the refreshed token", func() bool { return rec.welcomes() == 2 })
	// At once: no backoff (MinBackoff is 2 s here) for a refused credential that was replaced.
	if d := time.Since(start); d > 1800*time.Millisecond {
		t.Fatalf("reconnected after %s", d)
	}
	s := llStats(t)
	ws := s.WS[lbl]
	if ws.Unauthorized != 1 || ws.Opened != 2 || ws.Credentials != 2 || ws.Closed["3000"] != 1 || s.IDP.RefreshToken != before+1 {
		t.Fatalf("server saw %+v, provider refreshes %d → %d", ws, before, s.IDP.RefreshToken)
	}
	var re *refusedCredential
	if err := rec.lastDisconnect(); !errors.As(err, &re) {
		t.Fatalf("OnDisconnect got %v", err)
	}
	if v := metricValue(t, reg, "nexus_bridge_disconnects_total", map[string]string{"reason": "unauthorized"}); v != 1 {
		t.Fatalf("disconnects{unauthorized} %v", v)
	}
	if v := metricValue(t, reg, "nexus_bridge_token_refreshes_total", map[string]string{"result": "ok"}); v != 1 {
		t.Fatalf("token_refreshes{ok} %v", v)
	}
	rec.echo(t, "with the new token")
	cancel()
	m.wait(t, 10*time.Second)
}

// connectShortLived makes a new oauth2 connection whose tokens live `seconds` (the provider
// says so, and the testbed's servers refuse them once that has passed) and returns it with
// its first token's expiry.
func connectShortLived(t *testing.T, seconds int) (string, time.Time) {
	t.Helper()
	var out struct {
		ConnectionID string `json:"connection_id"`
	}
	control(t, http.MethodPost, "/connect", map[string]any{"strategy": StrategyOAuth2, "workspace_id": label(t), "token_ttl": seconds}, &out)
	tok, err := agentClient(t).GetToken(ctxT(t), out.ConnectionID)
	if err != nil {
		t.Fatal(err)
	}
	if tok.ExpiresAt == nil || time.Until(*tok.ExpiresAt) > time.Duration(seconds)*time.Second+time.Second {
		t.Fatalf("the token is not short-lived: %v", tok.ExpiresAt)
	}
	return out.ConnectionID, *tok.ExpiresAt
}

// A short-lived token is refreshed before it expires and handed to the server in band:
// the connection is never closed, and outlives the token it was opened with.
func TestMaintainWebSocketRefreshInBand(t *testing.T) {
	id, expires := connectShortLived(t, 12)
	lbl := label(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	rec := &wsRecorder{}
	reg := prometheus.NewRegistry()
	metrics, _ := NewPrometheusMetrics(reg, nil)
	reauth := func(tok *Token) ([]byte, error) {
		return fmt.Appendf(nil, `{"type":"reauth","headers":{"Authorization":"Bearer %s"}}`, tok.AccessToken), nil
	}
	b := NewBridge(agentClient(t), WithRefreshBuffer(3*time.Second), WithReauthMessage(reauth), WithMetrics(metrics), WithRetryPolicy(fastPolicy))
	m := maintain(func() error { return b.MaintainWebSocket(ctx, id, wsEndpoint(t, StrategyOAuth2, lbl), rec) })
	eventually(t, 20*time.Second, "welcome", func() bool { return rec.welcomes() == 1 })
	eventually(t, 20*time.Second, "an in-band re-authentication", func() bool { return llStats(t).WS[lbl].ReauthOK >= 1 })
	if time.Now().After(expires) {
		t.Fatalf("re-authenticated only after the token expired")
	}
	time.Sleep(time.Until(expires.Add(time.Second)))
	rec.echo(t, "after the first token expired")
	s := llStats(t).WS[lbl]
	if s.Opened != 1 || s.Open != 1 || s.Unauthorized != 0 || s.Credentials < 2 || s.ReauthRefused != 0 {
		t.Fatalf("server saw %+v", s)
	}
	if _, disconnects := rec.counts(); disconnects != 0 {
		t.Fatalf("%d disconnects", disconnects)
	}
	if v := metricValue(t, reg, "nexus_bridge_token_refreshes_total", map[string]string{"result": "ok"}); v < 1 {
		t.Fatalf("token_refreshes{ok} %v", v)
	}
	cancel()
	m.wait(t, 10*time.Second)
}

// Without an in-band re-auth, the connection is closed cleanly and opened again with the
// refreshed token before the old one expires: the server never has to refuse it.
func TestMaintainWebSocketRefreshReconnects(t *testing.T) {
	id, expires := connectShortLived(t, 12)
	lbl := label(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	rec := &wsRecorder{}
	b := NewBridge(agentClient(t), WithRefreshBuffer(3*time.Second), WithRetryPolicy(fastPolicy))
	m := maintain(func() error { return b.MaintainWebSocket(ctx, id, wsEndpoint(t, StrategyOAuth2, lbl), rec) })
	eventually(t, 20*time.Second, "a second connection", func() bool { return rec.welcomes() == 2 })
	if time.Now().After(expires) {
		t.Fatalf("reconnected only after the token expired")
	}
	time.Sleep(time.Until(expires.Add(time.Second)))
	rec.echo(t, "after the first token expired")
	s := llStats(t).WS[lbl]
	if s.Opened != 2 || s.Closed["1000"] != 1 || s.Unauthorized != 0 || s.Credentials != 2 {
		t.Fatalf("server saw %+v", s)
	}
	if err := rec.lastDisconnect(); !errors.Is(err, errCredentialRefreshed) {
		t.Fatalf("OnDisconnect got %v", err)
	}
	cancel()
	m.wait(t, 10*time.Second)
}
