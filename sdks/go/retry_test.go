package nexus

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeBroker answers with the given handlers in turn (the last one repeats).
func fakeBroker(t *testing.T, handlers ...http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i >= len(handlers) {
			i = len(handlers) - 1
		}
		handlers[i](w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func answer(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(body))
	}
}

var okStatus = answer(200, `{"connection_id":"c1","status":"active"}`)

// recorder collects OnRetry calls.
type recorder struct {
	mu     sync.Mutex
	delays []time.Duration
	errs   []error
}

func (r *recorder) policy(attempts int) RetryPolicy {
	return RetryPolicy{MaxAttempts: attempts, BaseDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond, MaxRetryAfter: 2 * time.Second,
		OnRetry: func(_ int, d time.Duration, err error) {
			r.mu.Lock()
			r.delays = append(r.delays, d)
			r.errs = append(r.errs, err)
			r.mu.Unlock()
		}}
}

func unitClient(t *testing.T, url string, opts ...Option) *Client {
	t.Helper()
	c, err := New(append([]Option{WithBaseURL(url), WithAPIKey("unit-key"), withGetenv(noEnv)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRetriesOn503ThenSucceeds(t *testing.T) {
	srv, n := fakeBroker(t,
		answer(503, `{"error":"refresh_in_progress","message":"retry shortly"}`),
		answer(502, `<html>bad gateway</html>`),
		answer(504, ``),
		okStatus)
	var rec recorder
	c := unitClient(t, srv.URL, WithRetry(rec.policy(5)))
	status, err := c.CheckConnection(context.Background(), "c1")
	if err != nil || status != "active" || n.Load() != 4 {
		t.Fatalf("status %q err %v after %d requests", status, err, n.Load())
	}
	if len(rec.errs) != 3 || !errors.Is(rec.errs[0], ErrUnavailable) {
		t.Fatalf("retries: %v", rec.errs)
	}
	for i, d := range rec.delays {
		want := time.Millisecond << i
		if want > 4*time.Millisecond {
			want = 4 * time.Millisecond
		}
		if d < want/2 || d > want {
			t.Fatalf("delay %d = %v, want in [%v, %v]", i, d, want/2, want)
		}
	}
}

func TestRetriesAreBounded(t *testing.T) {
	srv, n := fakeBroker(t, answer(503, `{"error":"service_unavailable","message":"down","request_id":"rid-1"}`))
	var rec recorder
	c := unitClient(t, srv.URL, WithRetry(rec.policy(3)))
	_, err := c.CheckConnection(context.Background(), "c1")
	var e *Error
	if !errors.As(err, &e) || e.Status != 503 || e.Attempts != 3 || e.RequestID != "rid-1" || n.Load() != 3 {
		t.Fatalf("err %v after %d requests", err, n.Load())
	}
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrServer) || !e.Temporary() {
		t.Fatal("a 503 is not typed as unavailable")
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	srv, n := fakeBroker(t, answer(429, `{"error":"rate_limited","message":"slow down"}`, "Retry-After", "1"), okStatus)
	var rec recorder
	c := unitClient(t, srv.URL, WithRetry(rec.policy(3)))
	if _, err := c.CheckConnection(context.Background(), "c1"); err != nil || n.Load() != 2 {
		t.Fatalf("err %v after %d requests", err, n.Load())
	}
	if len(rec.delays) != 1 || rec.delays[0] != time.Second || !errors.Is(rec.errs[0], ErrRateLimited) {
		t.Fatalf("waited %v for Retry-After: 1 (%v)", rec.delays, rec.errs)
	}

	// A Retry-After beyond MaxRetryAfter ends the retries with the 429.
	srv, n = fakeBroker(t, answer(429, `{"error":"rate_limited","message":"later"}`, "Retry-After", "3600"), okStatus)
	c = unitClient(t, srv.URL, WithRetry(rec.policy(3)))
	_, err := c.CheckConnection(context.Background(), "c1")
	var e *Error
	if !errors.As(err, &e) || e.Status != 429 || e.RetryAfter != time.Hour || n.Load() != 1 {
		t.Fatalf("err %v after %d requests", err, n.Load())
	}
}

func TestNoRetryOnClientErrors(t *testing.T) {
	for _, tc := range []struct {
		status   int
		body     string
		sentinel error
	}{
		{400, `{"error":"invalid_request","message":"bad","details":[{"path":"params.id","message":"a connection id (UUID)"}]}`, ErrBadRequest},
		{401, `{"error":"unauthorized","message":"no"}`, ErrUnauthorized},
		{403, `{"error":"forbidden","message":"no"}`, ErrForbidden},
		{404, `{"error":"connection_not_found","message":"none"}`, ErrNotFound},
		{409, `{"error":"attention_required","message":"reconnect","details":{"connection_id":"c9","status":"attention_required"}}`, ErrAttentionRequired},
		{409, `{"error":"connection_not_active","message":"pending","details":{"connection_id":"c9","status":"pending"}}`, ErrNotActive},
		{500, `{"error":"internal_error","message":"oops"}`, ErrServer},
	} {
		srv, n := fakeBroker(t, answer(tc.status, tc.body, "X-Request-Id", "req-42"), okStatus)
		c := unitClient(t, srv.URL, WithRetry(RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond}))
		_, err := c.GetToken(context.Background(), "c9")
		var e *Error
		if !errors.Is(err, tc.sentinel) || !errors.As(err, &e) || e.RequestID != "req-42" || n.Load() != 1 {
			t.Fatalf("%d: %v after %d requests", tc.status, err, n.Load())
		}
		if tc.status == 409 && e.ConnectionID != "c9" {
			t.Fatalf("409 without its connection id: %#v", e)
		}
		if tc.sentinel == ErrAttentionRequired && !strings.Contains(err.Error(), "must reconnect") {
			t.Fatalf("attention message: %v", err)
		}
		if tc.status == 400 && !strings.Contains(err.Error(), "params.id") {
			t.Fatalf("validation details missing: %v", err)
		}
		if errors.Is(err, ErrUnavailable) && tc.status != 503 {
			t.Fatalf("%d typed as unavailable", tc.status)
		}
	}
}

func TestUnreachableBrokerIsRetriedThenTyped(t *testing.T) {
	// A port nothing listens on.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	var rec recorder
	c := unitClient(t, "http://"+addr, WithRetry(rec.policy(3)))
	_, err := c.CheckConnection(context.Background(), "c1")
	var e *Error
	if !errors.As(err, &e) || e.Status != 0 || e.Code != CodeUnreachable || e.Attempts != 3 || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %#v", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("the transport error is not unwrapped: %v", err)
	}
	if strings.Contains(err.Error(), "unit-key") {
		t.Fatal("the API key is in the message")
	}
}

func TestTimeoutBoundsEachAttempt(t *testing.T) {
	release := make(chan struct{})
	srv, n := fakeBroker(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, okStatus)
	defer close(release)
	c := unitClient(t, srv.URL, WithTimeout(200*time.Millisecond), WithRetry(RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond}))
	// The first attempt times out (the server never answers it); a retry gets the answer.
	if status, err := c.CheckConnection(context.Background(), "c1"); err != nil || status != "active" || n.Load() < 2 {
		t.Fatalf("%q %v after %d", status, err, n.Load())
	}
	// The caller's context ends the call, retries included.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.CheckConnection(ctx, "c1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestErrorMessageNeverShowsABody(t *testing.T) {
	srv, _ := fakeBroker(t, answer(418, `secret-looking body text`))
	c := unitClient(t, srv.URL)
	_, err := c.CheckConnection(context.Background(), "c1")
	if err == nil || strings.Contains(err.Error(), "secret-looking") {
		t.Fatalf("%v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "5": 5 * time.Second, "-1": 0, "abc": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}

// A POST the broker may have processed is never sent again: a late answer (timeout), a
// reset connection, 502 and 504 end the call after one request; a refused connection
// (nothing sent), 503 and 429 are retried.
func TestPostIsNotRetriedWhenItMayHaveBeenProcessed(t *testing.T) {
	in := RequestConnectionInput{UserID: "u1"}
	created := answer(200, `{"connection_id":"c1","auth_url":"https://example.com/auth"}`)
	for _, tc := range []struct {
		name    string
		first   http.HandlerFunc
		want    int64 // POSTs the broker receives
		wantErr bool
	}{
		{"late answer", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}, 1, true},
		{"connection reset", func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
			}
		}, 1, true},
		{"502", answer(502, `bad gateway`), 1, true},
		{"504", answer(504, ``), 1, true},
		{"503", answer(503, `{"error":"service_unavailable","message":"down"}`), 2, false},
		{"429", answer(429, `{"error":"rate_limited","message":"slow"}`, "Retry-After", "0"), 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var posts atomic.Int64
			srv, _ := fakeBroker(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost && r.URL.Path == "/v1/request-connection" {
					if posts.Add(1) == 1 {
						tc.first(w, r)
						return
					}
				}
				created(w, r)
			})
			var rec recorder
			c := unitClient(t, srv.URL, WithTimeout(300*time.Millisecond), WithRetry(rec.policy(4)))
			_, err := c.RequestConnection(context.Background(), in)
			if (err != nil) != tc.wantErr || posts.Load() != tc.want {
				t.Fatalf("err %v after %d POSTs, want %d", err, posts.Load(), tc.want)
			}
		})
	}

	t.Run("connection refused", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		var rec recorder
		c := unitClient(t, "http://"+addr, WithRetry(rec.policy(3)))
		_, err := c.RequestConnection(context.Background(), in)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeUnreachable || e.Attempts != 3 {
			t.Fatalf("a POST that could not be sent was not retried: %v", err)
		}
	})

	// The same failures are retried for a GET.
	for _, first := range []http.HandlerFunc{answer(502, ``), answer(504, ``), func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}} {
		srv, n := fakeBroker(t, first, okStatus)
		var rec recorder
		c := unitClient(t, srv.URL, WithRetry(rec.policy(4)))
		if status, err := c.CheckConnection(context.Background(), "c1"); err != nil || status != "active" || n.Load() != 2 {
			t.Fatalf("GET: %q %v after %d requests", status, err, n.Load())
		}
	}
}

// A Retry-After too large for 32 bits is read (not ignored, which retried at once) and,
// being above MaxRetryAfter, ends the retries.
func TestHugeRetryAfterEndsTheRetries(t *testing.T) {
	for _, v := range []string{"4294967296", "99999999999", "99999999999999999999"} {
		srv, n := fakeBroker(t, answer(503, `{"error":"service_unavailable","message":"later"}`, "Retry-After", v), okStatus)
		var rec recorder
		c := unitClient(t, srv.URL, WithRetry(rec.policy(4)))
		_, err := c.CheckConnection(context.Background(), "c1")
		var e *Error
		if !errors.As(err, &e) || e.Status != 503 || n.Load() != 1 || e.RetryAfter < 4294967296*time.Second {
			t.Fatalf("Retry-After %s: err %v (RetryAfter %v) after %d requests", v, err, e.RetryAfter, n.Load())
		}
	}
	now := time.Now()
	for in, want := range map[string]time.Duration{
		"2147483648":            2147483648 * time.Second,
		"9223372036":            9223372036 * time.Second,
		"9223372037":            maxDuration,
		"99999999999999999999":  maxDuration,
		"-99999999999999999999": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}
