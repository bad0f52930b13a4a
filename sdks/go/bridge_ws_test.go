package nexus

// MaintainWebSocket against the testbed's WebSocket server, which checks the credential at
// the handshake (oauth2 through the provider's userinfo endpoint) and while the connection
// lasts, with the project's own broker and a real OpenID provider behind the SDK.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

func wsEndpoint(t *testing.T, strategy, lbl string) string {
	return longLivedServers(t).WSURL + "/" + strategy + "/" + lbl
}

func TestMaintainWebSocketStrategies(t *testing.T) {
	tb := testbed(t)
	c := agentClient(t)
	for _, strategy := range []string{StrategyOAuth2, StrategyHeader, StrategyQueryParam, StrategyBasicAuth, StrategyAWSSigV4} {
		t.Run(strategy, func(t *testing.T) {
			lbl := label(t)
			ctx, cancel := context.WithCancel(ctxT(t))
			rec := &wsRecorder{}
			m := maintain(func() error {
				return NewBridge(c).MaintainWebSocket(ctx, tb.Connections[strategy], wsEndpoint(t, strategy, lbl), rec)
			})
			eventually(t, 20*time.Second, "welcome", func() bool { return rec.welcomes() == 1 })
			rec.echo(t, "hello "+strategy)
			cancel()
			if err := m.wait(t, 10*time.Second); !errors.Is(err, context.Canceled) {
				t.Fatalf("after cancel: %v", err)
			}
			s := llStats(t).WS[lbl]
			if s.Opened != 1 || s.Credentials != 1 || len(s.Handshakes) != 1 || s.Handshakes[0].Status != 101 {
				t.Fatalf("server saw %+v", s)
			}
		})
	}

	t.Run("the server checks the credential", func(t *testing.T) {
		lbl := label(t)
		_, resp, err := websocket.DefaultDialer.Dial(wsEndpoint(t, StrategyOAuth2, lbl), http.Header{"Authorization": {"Bearer not-a-token"}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a wrong bearer token was not refused: %v %v", err, resp)
		}
	})

	t.Run("hmac_payload has no handshake form", func(t *testing.T) {
		err := NewBridge(c).MaintainWebSocket(ctxT(t), tb.Connections[StrategyHMACPayload], wsEndpoint(t, StrategyHMACPayload, label(t)), &wsRecorder{})
		var pe *PermanentError
		if !errors.As(err, &pe) || !errors.Is(err, ErrStrategy) {
			t.Fatalf("hmac over a WebSocket: %v", err)
		}
	})
}

func TestMaintainWebSocketDropReconnect(t *testing.T) {
	tb := testbed(t)
	lbl := label(t)
	reg := prometheus.NewRegistry()
	metrics, err := NewPrometheusMetrics(reg, map[string]string{"agent": "tb"})
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	b := NewBridge(agentClient(t), WithRetryPolicy(fastPolicy), WithMetrics(metrics), WithLogger(logs.logger()))
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	rec := &wsRecorder{}
	id := tb.Connections[StrategyHeader]
	m := maintain(func() error { return b.MaintainWebSocket(ctx, id, wsEndpoint(t, StrategyHeader, lbl), rec) })
	eventually(t, 20*time.Second, "welcome", func() bool { return rec.welcomes() == 1 })
	status := map[string]string{"transport": "websocket", "connection_id": id}
	if v := metricValue(t, reg, "nexus_bridge_connection_status", status); v != 1 {
		t.Fatalf("status while connected: %v", v)
	}

	var dropped struct{ Dropped int }
	control(t, http.MethodPost, "/ws/drop", map[string]any{"label": lbl}, &dropped)
	if dropped.Dropped != 1 {
		t.Fatalf("dropped %d", dropped.Dropped)
	}
	eventually(t, 20*time.Second, "a second connection", func() bool { return rec.welcomes() == 2 })
	rec.echo(t, "after the drop")

	if connects, disconnects := rec.counts(); connects != 2 || disconnects != 1 {
		t.Fatalf("OnConnect %d, OnDisconnect %d", connects, disconnects)
	}
	s := llStats(t).WS[lbl]
	if s.Opened != 2 || s.Closed["1006"] != 1 || len(s.Handshakes) != 2 {
		t.Fatalf("server saw %+v", s)
	}
	// The second handshake waited for the backoff (at least half of MinBackoff).
	if gap := s.Handshakes[1].At - s.Handshakes[0].At; gap < fastPolicy.MinBackoff.Milliseconds()/2 {
		t.Fatalf("reconnected after %d ms, before any backoff", gap)
	}
	if v := metricValue(t, reg, "nexus_bridge_connections_total", map[string]string{"transport": "websocket", "agent": "tb"}); v != 2 {
		t.Fatalf("connections_total %v", v)
	}
	if v := metricValue(t, reg, "nexus_bridge_disconnects_total", map[string]string{"transport": "websocket", "reason": "dropped"}); v != 1 {
		t.Fatalf("disconnects_total{dropped} %v", v)
	}
	cancel()
	if err := m.wait(t, 10*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
	if v := metricValue(t, reg, "nexus_bridge_connection_status", status); v != 0 {
		t.Fatalf("status after the end: %v", v)
	}
	out := logs.String()
	for _, want := range []string{`"msg":"connected"`, `"msg":"reconnecting"`, `"connection_id":"` + id + `"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("the logs lack %s:\n%s", want, out)
		}
	}
	tok, err := agentClient(t).GetToken(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, tok.Credentials["api_key"]) {
		t.Fatal("the logs contain the credential")
	}
}

// The waits between failed attempts grow exponentially: the server refuses three handshakes
// (503) after a drop, and its own clock shows each wait at least twice the lower bound of
// the one before.
func TestMaintainWebSocketBackoff(t *testing.T) {
	tb := testbed(t)
	lbl := label(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	rec := &wsRecorder{}
	b := NewBridge(agentClient(t), WithRetryPolicy(fastPolicy))
	m := maintain(func() error {
		return b.MaintainWebSocket(ctx, tb.Connections[StrategyBasicAuth], wsEndpoint(t, StrategyBasicAuth, lbl), rec)
	})
	eventually(t, 20*time.Second, "welcome", func() bool { return rec.welcomes() == 1 })
	control(t, http.MethodPost, "/ws/refuse-next", map[string]any{"label": lbl, "count": 3, "status": 503}, nil)
	control(t, http.MethodPost, "/ws/drop", map[string]any{"label": lbl}, nil)
	eventually(t, 20*time.Second, "the connection after three refusals", func() bool { return rec.welcomes() == 2 })
	h := llStats(t).WS[lbl].Handshakes
	if len(h) != 5 || h[1].Status != 503 || h[2].Status != 503 || h[3].Status != 503 || h[4].Status != 101 {
		t.Fatalf("handshakes %+v", h)
	}
	// Attempt n waits within [MinBackoff·2ⁿ/2, MinBackoff·2ⁿ]; the first wait follows the drop.
	for n := 1; n <= 3; n++ {
		low := (fastPolicy.MinBackoff << n).Milliseconds() / 2
		if gap := h[n+1].At - h[n].At; gap < low-5 {
			t.Fatalf("wait %d was %d ms, below %d ms: no exponential backoff (%+v)", n, gap, low, h)
		}
	}
	cancel()
	m.wait(t, 10*time.Second)
}

func TestMaintainWebSocketPermanentCloseCode(t *testing.T) {
	tb := testbed(t)
	lbl := label(t)
	rec := &wsRecorder{}
	b := NewBridge(agentClient(t), WithRetryPolicy(fastPolicy))
	m := maintain(func() error {
		return b.MaintainWebSocket(ctxT(t), tb.Connections[StrategyHeader], wsEndpoint(t, StrategyHeader, lbl), rec)
	})
	eventually(t, 20*time.Second, "welcome", func() bool { return rec.welcomes() == 1 })
	control(t, http.MethodPost, "/ws/drop", map[string]any{"label": lbl, "code": 1008, "reason": "policy"}, nil)
	err := m.wait(t, 10*time.Second)
	var pe *PermanentError
	var ce *websocket.CloseError
	if !errors.As(err, &pe) || pe.CloseCode != 1008 || !errors.As(err, &ce) || pe.ConnectionID != tb.Connections[StrategyHeader] {
		t.Fatalf("after close 1008: %v", err)
	}
	if _, disconnects := rec.counts(); disconnects != 1 {
		t.Fatalf("OnDisconnect %d", disconnects)
	}
	time.Sleep(2 * fastPolicy.MaxBackoff)
	if s := llStats(t).WS[lbl]; s.Opened != 1 || len(s.Handshakes) != 1 {
		t.Fatalf("connected again after a permanent close code: %+v", s)
	}
}

func TestMaintainWebSocketRevoked(t *testing.T) {
	t.Run("grant revoked at the provider", func(t *testing.T) {
		id, _ := connect(t, StrategyOAuth2)
		lbl := label(t)
		rec := &wsRecorder{}
		b := NewBridge(agentClient(t), WithRetryPolicy(fastPolicy))
		m := maintain(func() error { return b.MaintainWebSocket(ctxT(t), id, wsEndpoint(t, StrategyOAuth2, lbl), rec) })
		eventually(t, 20*time.Second, "welcome", func() bool { return rec.welcomes() == 1 })
		control(t, http.MethodPost, "/idp/revoke", map[string]any{"connection_id": id}, nil)
		err := m.wait(t, 20*time.Second)
		var pe *PermanentError
		if !errors.As(err, &pe) || !errors.Is(err, ErrAttentionRequired) || pe.ConnectionID != id {
			t.Fatalf("after the grant was revoked: %v", err)
		}
		if s := llStats(t).WS[lbl]; s.Opened != 1 || s.Unauthorized != 1 {
			t.Fatalf("server saw %+v", s)
		}
	})

	// An API key stays valid upstream after the broker revoked its connection: only reading
	// the credential again before reconnecting (not the cached one) stops the loop.
	t.Run("static connection revoked at the broker", func(t *testing.T) {
		id, _ := connect(t, StrategyHeader)
		lbl := label(t)
		rec := &wsRecorder{}
		c := agentClient(t)
		b := NewBridge(c, WithRetryPolicy(fastPolicy))
		m := maintain(func() error { return b.MaintainWebSocket(ctxT(t), id, wsEndpoint(t, StrategyHeader, lbl), rec) })
		eventually(t, 20*time.Second, "welcome", func() bool { return rec.welcomes() == 1 })
		if _, err := c.RevokeConnection(ctxT(t), id, "test"); err != nil {
			t.Fatal(err)
		}
		control(t, http.MethodPost, "/ws/drop", map[string]any{"label": lbl}, nil)
		err := m.wait(t, 20*time.Second)
		var pe *PermanentError
		if !errors.As(err, &pe) || !(errors.Is(err, ErrNotActive) || errors.Is(err, ErrNotFound)) {
			t.Fatalf("after the connection was revoked: %v", err)
		}
		if s := llStats(t).WS[lbl]; s.Opened != 1 {
			t.Fatalf("connected again with a revoked connection's credential: %+v", s)
		}
	})

	t.Run("connection revoked at the broker", func(t *testing.T) {
		id, _ := connect(t, StrategyOAuth2)
		lbl := label(t)
		rec := &wsRecorder{}
		c := agentClient(t)
		b := NewBridge(c, WithRetryPolicy(fastPolicy))
		m := maintain(func() error { return b.MaintainWebSocket(ctxT(t), id, wsEndpoint(t, StrategyOAuth2, lbl), rec) })
		eventually(t, 20*time.Second, "welcome", func() bool { return rec.welcomes() == 1 })
		if _, err := c.RevokeConnection(ctxT(t), id, "test"); err != nil {
			t.Fatal(err)
		}
		control(t, http.MethodPost, "/ws/drop", map[string]any{"label": lbl}, nil)
		err := m.wait(t, 20*time.Second)
		var pe *PermanentError
		if !errors.As(err, &pe) || !(errors.Is(err, ErrNotActive) || errors.Is(err, ErrNotFound)) {
			t.Fatalf("after the connection was revoked: %v", err)
		}
	})
}

func TestMaintainWebSocketMessageSizeLimit(t *testing.T) {
	tb := testbed(t)
	lbl := label(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	rec := &wsRecorder{}
	b := NewBridge(agentClient(t), WithMessageSizeLimit(1024), WithRetryPolicy(fastPolicy))
	m := maintain(func() error {
		return b.MaintainWebSocket(ctx, tb.Connections[StrategyHeader], wsEndpoint(t, StrategyHeader, lbl), rec)
	})
	eventually(t, 20*time.Second, "welcome", func() bool { return rec.welcomes() == 1 })

	// Outgoing: refused before anything is written; the connection stays.
	if err := rec.send(make([]byte, 1025)); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("sending 1025 bytes: %v", err)
	}
	rec.echo(t, strings.Repeat("x", 1024))
	if s := llStats(t).WS[lbl]; s.Messages != 1 {
		t.Fatalf("the server received %d messages", s.Messages)
	}

	// Incoming: the connection is closed with 1009 (message too big), then opened again.
	if err := rec.send([]byte(`{"type":"blob","bytes":2048}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a second connection", func() bool { return rec.welcomes() == 2 })
	if err := rec.lastDisconnect(); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("OnDisconnect got %v", err)
	}
	if s := llStats(t).WS[lbl]; s.Closed["1009"] != 1 || s.Opened != 2 {
		t.Fatalf("server saw %+v", s)
	}
	cancel()
	m.wait(t, 10*time.Second)
}

func TestMaintainWebSocketPingPong(t *testing.T) {
	tb := testbed(t)
	lbl := label(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	rec := &wsRecorder{}
	b := NewBridge(agentClient(t), WithPingInterval(200*time.Millisecond), WithWriteTimeout(400*time.Millisecond), WithRetryPolicy(fastPolicy))
	m := maintain(func() error {
		return b.MaintainWebSocket(ctx, tb.Connections[StrategyHeader], wsEndpoint(t, StrategyHeader, lbl), rec)
	})
	eventually(t, 20*time.Second, "welcome", func() bool { return rec.welcomes() == 1 })
	eventually(t, 10*time.Second, "three pings", func() bool { return llStats(t).WS[lbl].Pings >= 3 })
	// Pongs keep an idle connection up: after several ping intervals it is still the first.
	time.Sleep(time.Second)
	if connects, _ := rec.counts(); connects != 1 {
		t.Fatalf("an idle connection with pongs was dropped: %d connects", connects)
	}
	// A server that stops answering is given up and replaced.
	var muted struct{ Muted int }
	control(t, http.MethodPost, "/ws/mute", map[string]any{"label": lbl}, &muted)
	if muted.Muted != 1 {
		t.Fatalf("muted %d", muted.Muted)
	}
	eventually(t, 10*time.Second, "a new connection after the pongs stopped", func() bool { return rec.welcomes() == 2 })
	if err := rec.lastDisconnect(); err == nil || !strings.Contains(err.Error(), "no pong") {
		t.Fatalf("OnDisconnect got %v", err)
	}
	cancel()
	m.wait(t, 10*time.Second)
}

func TestMaintainWebSocketCancel(t *testing.T) {
	tb := testbed(t)
	lbl := label(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	rec := &wsRecorder{}
	m := maintain(func() error {
		return NewBridge(agentClient(t)).MaintainWebSocket(ctx, tb.Connections[StrategyHeader], wsEndpoint(t, StrategyHeader, lbl), rec)
	})
	eventually(t, 20*time.Second, "welcome", func() bool { return rec.welcomes() == 1 })
	cancel()
	start := time.Now()
	if err := m.wait(t, 5*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %s to end", d)
	}
	if err := rec.lastDisconnect(); !errors.Is(err, context.Canceled) {
		t.Fatalf("OnDisconnect got %v", err)
	}
	if err := rec.send([]byte("late")); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("send after the end: %v", err)
	}
	// A clean close: the server received the close frame (1000), nothing stays open.
	eventually(t, 5*time.Second, "the server saw the close", func() bool {
		s := llStats(t).WS[lbl]
		return s.Closed["1000"] == 1 && s.Open == 0
	})
	if m.running() {
		t.Fatal("still running")
	}
}
