package nexus

// Helpers of the persistent-connection bridge tests (bridge_ws_test.go,
// bridge_grpc_conn_test.go): the testbed's long-lived servers and their counters, a
// recording WebSocket handler, a recording logger, and unit tests that need no testbed.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// longLived is where the testbed's WebSocket and gRPC servers listen (GET /info).
type longLived struct {
	WSURL      string `json:"ws_url"`
	GRPCTarget string `json:"grpc_target"`
}

func longLivedServers(t *testing.T) longLived {
	t.Helper()
	var out longLived
	control(t, http.MethodGet, "/info", nil, &out)
	if out.WSURL == "" || out.GRPCTarget == "" {
		t.Fatalf("the testbed has no long-lived servers: %+v", out)
	}
	return out
}

type wsLabelStats struct {
	Handshakes []struct {
		At     int64 `json:"at"`
		Status int   `json:"status"`
	} `json:"handshakes"`
	Opened        int            `json:"opened"`
	Open          int            `json:"open"`
	Closed        map[string]int `json:"closed"`
	Messages      int            `json:"messages"`
	Pings         int            `json:"pings"`
	ReauthOK      int            `json:"reauth_ok"`
	ReauthRefused int            `json:"reauth_refused"`
	Unauthorized  int            `json:"unauthorized"`
	Credentials   int            `json:"credentials"`
}

type grpcLabelStats struct {
	Calls struct {
		Accepted int `json:"accepted"`
		Rejected int `json:"rejected"`
	} `json:"calls"`
	Watches struct {
		Started int `json:"started"`
		Open    int `json:"open"`
	} `json:"watches"`
	Unauthorized int `json:"unauthorized"`
	Connections  int `json:"connections"`
	Credentials  int `json:"credentials"`
}

type longLivedStats struct {
	IDP struct {
		RefreshToken int `json:"refresh_token"`
	} `json:"idp"`
	WS   map[string]wsLabelStats `json:"ws"`
	GRPC struct {
		Labels map[string]grpcLabelStats `json:"labels"`
	} `json:"grpc"`
}

func llStats(t *testing.T) longLivedStats {
	t.Helper()
	var s longLivedStats
	control(t, http.MethodGet, "/stats", nil, &s)
	return s
}

// label is a name of the test's own for the servers' counters.
func label(t *testing.T) string {
	return fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "."), time.Now().UnixNano())
}

// eventually polls cond every 20 ms until it holds or d passed.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wsRecorder is a WebSocketHandler that keeps what it was told.
type wsRecorder struct {
	mu          sync.Mutex
	sends       []func([]byte) error
	messages    [][]byte
	disconnects []error
}

func (r *wsRecorder) OnConnect(send func([]byte) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sends = append(r.sends, send)
}

func (r *wsRecorder) OnMessage(m []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.messages = append(r.messages, m)
}

func (r *wsRecorder) OnDisconnect(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.disconnects = append(r.disconnects, err)
}

func (r *wsRecorder) counts() (connects, disconnects int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sends), len(r.disconnects)
}

// send uses the latest connection's send function.
func (r *wsRecorder) send(msg []byte) error {
	r.mu.Lock()
	send := r.sends[len(r.sends)-1]
	r.mu.Unlock()
	return send(msg)
}

func (r *wsRecorder) received(msg []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.messages {
		if bytes.Equal(m, msg) {
			return true
		}
	}
	return false
}

func (r *wsRecorder) welcomes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.messages {
		if bytes.HasPrefix(m, []byte(`{"type":"welcome"`)) {
			n++
		}
	}
	return n
}

func (r *wsRecorder) lastDisconnect() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.disconnects) == 0 {
		return nil
	}
	return r.disconnects[len(r.disconnects)-1]
}

// echo sends msg and waits for the server to echo it.
func (r *wsRecorder) echo(t *testing.T, msg string) {
	t.Helper()
	if err := r.send([]byte(msg)); err != nil {
		t.Fatalf("send %q: %v", msg, err)
	}
	eventually(t, 10*time.Second, "the echo of "+msg, func() bool { return r.received([]byte(msg)) })
}

// maintained runs fn (a Maintain… call) in a goroutine; wait returns its result.
type maintained struct {
	done     chan error
	finished atomic.Bool
}

func maintain(fn func() error) *maintained {
	m := &maintained{done: make(chan error, 1)}
	go func() {
		err := fn()
		m.finished.Store(true)
		m.done <- err
	}()
	return m
}

func (m *maintained) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-m.done:
		return err
	case <-time.After(d):
		t.Fatalf("still running after %s", d)
		return nil
	}
}

func (m *maintained) running() bool { return !m.finished.Load() }

// logBuffer is an slog handler's output, safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// metricValue reads one sample from a registry: the metric name and its labels.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}

// fastPolicy makes reconnections quick enough for tests.
var fastPolicy = ReconnectPolicy{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, ResetAfter: time.Minute}

func TestReconnectPolicyDelay(t *testing.T) {
	p := ReconnectPolicy{MinBackoff: 100 * time.Millisecond, MaxBackoff: 1 * time.Second}
	for n, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		for range 200 {
			d := p.Delay(n)
			if d < want/2 || d > want {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", n, d, want/2, want)
			}
		}
	}
	if d := (ReconnectPolicy{}).Delay(0); d < 500*time.Millisecond || d > time.Second {
		t.Fatalf("default first delay %s", d)
	}
}

func TestClassifyWebSocketErrors(t *testing.T) {
	b := NewBridge(nil)
	for _, tc := range []struct {
		err       error
		reason    string
		permanent bool
		refused   bool
	}{
		{&websocket.CloseError{Code: 1008}, "permanent", true, false},
		{&websocket.CloseError{Code: 4403}, "permanent", true, false},
		{&websocket.CloseError{Code: 3000}, "unauthorized", false, true},
		{&websocket.CloseError{Code: 4401}, "unauthorized", false, true},
		{&websocket.CloseError{Code: 1000}, "dropped", false, false},
		{&websocket.CloseError{Code: 1001}, "dropped", false, false},
		{&websocket.CloseError{Code: 1006}, "dropped", false, false},
		{&websocket.CloseError{Code: 1012}, "dropped", false, false},
		{websocket.ErrReadLimit, "too_large", false, false},
		{errors.New("reset"), "dropped", false, false},
	} {
		reason, err := b.classifyWSError(tc.err)
		var pe *PermanentError
		var re *refusedCredential
		if reason != tc.reason || errors.As(err, &pe) != tc.permanent || errors.As(err, &re) != tc.refused {
			t.Errorf("%v: %s %v", tc.err, reason, err)
		}
	}
	if _, err := b.classifyWSError(websocket.ErrReadLimit); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("read limit: %v", err)
	}
	custom := NewBridge(nil, WithPermanentCloseCodes(4000))
	if reason, _ := custom.classifyWSError(&websocket.CloseError{Code: 1008}); reason != "dropped" {
		t.Errorf("WithPermanentCloseCodes did not replace the defaults: %s", reason)
	}
}

func TestPermanentCredentialErrors(t *testing.T) {
	for _, tc := range []struct {
		err  *Error
		want bool
	}{
		{&Error{Status: 409, Code: CodeAttentionRequired}, true},
		{&Error{Status: 409, Code: CodeConnectionNotActive}, true},
		{&Error{Status: 404, Code: "connection_not_found"}, true},
		{&Error{Status: 503}, false},
		{&Error{Status: 0, Code: CodeUnreachable}, false},
		{&Error{Status: 429}, false},
		{&Error{Status: 409, Code: "refresh_in_progress"}, false},
	} {
		if got := permanentCredentialError(tc.err); got != tc.want {
			t.Errorf("%d %s: permanent=%v", tc.err.Status, tc.err.Code, got)
		}
	}
}

func TestSameCredential(t *testing.T) {
	a := &Token{Strategy: Strategy{Type: StrategyHeader}, Credentials: map[string]string{"api_key": "k1"}}
	b := &Token{Strategy: Strategy{Type: StrategyHeader}, Credentials: map[string]string{"api_key": "k1"}}
	c := &Token{Strategy: Strategy{Type: StrategyHeader}, Credentials: map[string]string{"api_key": "k2"}}
	if !sameCredential(a, b) || sameCredential(a, c) || sameCredential(a, nil) {
		t.Fatal("sameCredential")
	}
}

// A context ended before anything was dialled: MaintainWebSocket returns at once.
func TestMaintainWebSocketCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := NewBridge(nil).MaintainWebSocket(ctx, "c", "ws://127.0.0.1:9/x", &wsRecorder{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
	var pe *PermanentError
	if err := NewBridge(nil).MaintainWebSocket(context.Background(), "c", "http://example.test/", &wsRecorder{}); !errors.As(err, &pe) {
		t.Fatalf("an http:// endpoint: %v", err)
	}
}
