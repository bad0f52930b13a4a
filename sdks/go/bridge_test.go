package nexus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// onlyReader hides bytes.Reader's type so http.NewRequest sets no GetBody (a streamed body).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestBridgeAppliesEveryStrategy(t *testing.T) {
	tb := testbed(t)
	c := agentClient(t)
	ctx := ctxT(t)
	body := []byte(`{"hello":"world","n":[1,2,3]}`)
	sum := sha256.Sum256(body)
	for _, s := range strategies {
		t.Run(s, func(t *testing.T) {
			before := getStats(t).Upstream[s]
			// Without the bridge the upstream refuses: it really checks the credential.
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tb.UpstreamURL+"/"+s+"/items", nil)
			if status, _ := call(t, http.DefaultClient, req); status != http.StatusUnauthorized {
				t.Fatalf("without a credential: status %d, want 401", status)
			}

			hc := c.NewTransport(tb.Connections[s]).HTTPClient()
			req, _ = http.NewRequestWithContext(ctx, http.MethodGet, tb.UpstreamURL+"/"+s+"/items?x=1&y=a%20b", nil)
			status, a := call(t, hc, req)
			if status != 200 || !a.OK || a.Strategy != s || a.Method != "GET" {
				t.Fatalf("GET: status %d answer %+v", status, a)
			}
			// A body with GetBody (bytes.Reader) and a streamed one without.
			for i, rd := range []io.Reader{bytes.NewReader(body), onlyReader{bytes.NewReader(body)}} {
				req, _ = http.NewRequestWithContext(ctx, http.MethodPost, tb.UpstreamURL+"/"+s+"/items/42", rd)
				req.Header.Set("Content-Type", "application/json")
				status, a = call(t, hc, req)
				if status != 200 || a.Method != "POST" || a.Path != "/"+s+"/items/42" {
					t.Fatalf("POST %d: status %d answer %+v", i, status, a)
				}
				if a.BodySHA256 != "" && a.BodySHA256 != hex.EncodeToString(sum[:]) {
					t.Fatalf("POST %d: the upstream saw another body (%s)", i, a.BodySHA256)
				}
			}
			after := getStats(t).Upstream[s]
			if after.Accepted != before.Accepted+3 || after.Rejected != before.Rejected+1 {
				t.Fatalf("upstream counts: before %+v after %+v", before, after)
			}
		})
	}
}

func TestWorkspaceTransportResolvesTheConnection(t *testing.T) {
	tb := testbed(t)
	c := agentClient(t)
	ctx := ctxT(t)
	for _, s := range []string{StrategyOAuth2, StrategyHeader, StrategyAWSSigV4} {
		tr := c.NewWorkspaceTransport(tb.WorkspaceID, tb.Providers[s])
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, tb.UpstreamURL+"/"+s+"/things", strings.NewReader("payload"))
		if status, a := call(t, tr.HTTPClient(), req); status != 200 || a.Strategy != s {
			t.Fatalf("%s: status %d answer %+v", s, status, a)
		}
		tok, err := tr.Token(ctx)
		if err != nil || tok.ProviderName != tb.Providers[s] || tok.Strategy.Type != s {
			t.Fatalf("%s: token %v, %v", s, tok, err)
		}
	}
}

// Expiry-driven refresh without a stampede: with the clock moved past expires_at − skew,
// twenty concurrent requests cause exactly one refresh at the provider.
func TestBridgeRefreshesAheadOfExpiryOnce(t *testing.T) {
	tb := testbed(t)
	conn, _ := connect(t, StrategyOAuth2)
	clock := &fakeClock{}
	// Count what the SDK itself sends to the broker: the broker also collapses concurrent
	// refreshes, so the provider's count alone would not show an SDK stampede.
	calls := &countingRT{}
	c := agentClient(t, WithClock(clock), WithHTTPClient(&http.Client{Transport: calls}))
	ctx := ctxT(t)
	tr := c.NewTransport(conn, WithSkew(60*time.Second))
	hc := tr.HTTPClient()
	get := func() *http.Request {
		r, _ := http.NewRequestWithContext(ctx, http.MethodGet, tb.UpstreamURL+"/oauth2/me", nil)
		return r
	}
	if status, _ := call(t, hc, get()); status != 200 {
		t.Fatalf("first request: %d", status)
	}
	first, err := tr.Token(ctx)
	if err != nil || first.ExpiresAt == nil {
		t.Fatalf("token %v, %v (an OAuth token must have expires_at)", first, err)
	}
	// Still fresh: more requests do not refresh.
	before := getStats(t)
	for i := 0; i < 3; i++ {
		call(t, hc, get())
	}
	if s := getStats(t); s.IDP.RefreshToken != before.IDP.RefreshToken {
		t.Fatalf("a fresh credential was refreshed: %d → %d", before.IDP.RefreshToken, s.IDP.RefreshToken)
	}

	clock.Set(first.ExpiresAt.Add(-60*time.Second + time.Second))
	var wg sync.WaitGroup
	statuses := make([]int, 20)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := hc.Do(get())
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != 200 {
			t.Fatalf("request %d: status %d", i, s)
		}
	}
	after := getStats(t)
	if got := after.IDP.RefreshToken - before.IDP.RefreshToken; got != 1 {
		t.Fatalf("the provider saw %d refresh_token grants, want exactly 1", got)
	}
	if got := calls.count("POST /v1/refresh/" + conn); got != 1 {
		t.Fatalf("the SDK sent %d refresh calls to the broker, want exactly 1", got)
	}
	second, _ := tr.Token(ctx)
	if second.AccessToken == first.AccessToken {
		t.Fatal("the access token did not change after the refresh")
	}
}

func TestBridgeRetriesOnceAfterUpstream401(t *testing.T) {
	tb := testbed(t)
	c := agentClient(t)
	ctx := ctxT(t)

	t.Run("oauth2 refreshes at the provider", func(t *testing.T) {
		conn, _ := connect(t, StrategyOAuth2)
		tr := c.NewTransport(conn)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tb.UpstreamURL+"/oauth2/me", nil)
		if status, _ := call(t, tr.HTTPClient(), req); status != 200 {
			t.Fatalf("first: %d", status)
		}
		old, _ := tr.Token(ctx)
		before := getStats(t)
		control(t, http.MethodPost, "/upstream/reject-next", map[string]any{"strategy": "oauth2"}, nil)
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, tb.UpstreamURL+"/oauth2/me", bytes.NewReader([]byte(`{"a":1}`)))
		if status, _ := call(t, tr.HTTPClient(), req); status != 200 {
			t.Fatalf("after one 401: %d, want 200 (retried)", status)
		}
		after := getStats(t)
		if after.Upstream["oauth2"].Rejected != before.Upstream["oauth2"].Rejected+1 ||
			after.Upstream["oauth2"].Accepted != before.Upstream["oauth2"].Accepted+1 {
			t.Fatalf("upstream: before %+v after %+v", before.Upstream["oauth2"], after.Upstream["oauth2"])
		}
		if after.IDP.RefreshToken != before.IDP.RefreshToken+1 {
			t.Fatalf("refresh grants %d → %d, want one forced refresh", before.IDP.RefreshToken, after.IDP.RefreshToken)
		}
		if cur, _ := tr.Token(ctx); cur.AccessToken == old.AccessToken {
			t.Fatal("the credential was not refreshed")
		}
	})

	t.Run("hmac body is replayed and signed again", func(t *testing.T) {
		tr := c.NewTransport(tb.Connections[StrategyHMACPayload])
		before := getStats(t).Upstream["hmac_payload"]
		control(t, http.MethodPost, "/upstream/reject-next", map[string]any{"strategy": "hmac_payload"}, nil)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tb.UpstreamURL+"/hmac_payload/x", onlyReader{strings.NewReader("exact bytes \x00\xff")})
		if status, _ := call(t, tr.HTTPClient(), req); status != 200 {
			t.Fatalf("after one 401: %d", status)
		}
		after := getStats(t).Upstream["hmac_payload"]
		if after.Rejected != before.Rejected+1 || after.Accepted != before.Accepted+1 {
			t.Fatalf("upstream: before %+v after %+v", before, after)
		}
	})

	t.Run("exactly once: a second 401 reaches the caller", func(t *testing.T) {
		tr := c.NewTransport(tb.Connections[StrategyHeader])
		before := getStats(t).Upstream["header"]
		control(t, http.MethodPost, "/upstream/reject-next", map[string]any{"strategy": "header", "count": 2}, nil)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tb.UpstreamURL+"/header/x", nil)
		if status, _ := call(t, tr.HTTPClient(), req); status != http.StatusUnauthorized {
			t.Fatalf("status %d, want the upstream's 401", status)
		}
		after := getStats(t).Upstream["header"]
		if after.Rejected != before.Rejected+2 || after.Accepted != before.Accepted {
			t.Fatalf("upstream: before %+v after %+v (want exactly two tries)", before, after)
		}
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, tb.UpstreamURL+"/header/x", nil)
		if status, _ := call(t, tr.HTTPClient(), req); status != 200 {
			t.Fatalf("next request: %d", status)
		}
	})
}

func TestBridgeSurfacesAttentionRequired(t *testing.T) {
	tb := testbed(t)
	c := agentClient(t)
	ctx := ctxT(t)
	conn, _ := connect(t, StrategyOAuth2)
	tr := c.NewTransport(conn)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tb.UpstreamURL+"/oauth2/me", nil)
	if status, _ := call(t, tr.HTTPClient(), req); status != 200 {
		t.Fatalf("first: %d", status)
	}
	control(t, http.MethodPost, "/idp/revoke", map[string]string{"connection_id": conn}, nil)

	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, tb.UpstreamURL+"/oauth2/me", nil)
	resp, err := tr.HTTPClient().Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("status %d, want an attention_required error", resp.StatusCode)
	}
	if !errors.Is(err, ErrAttentionRequired) {
		t.Fatalf("error %v does not match ErrAttentionRequired", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.ConnectionID != conn || e.Status != http.StatusConflict || e.RequestID == "" {
		t.Fatalf("error %#v", e)
	}
	if !strings.Contains(err.Error(), "must reconnect") {
		t.Fatalf("the message does not tell the user must reconnect: %v", err)
	}
	if status, err := c.CheckConnection(ctx, conn); err != nil || status != StatusAttentionRequired {
		t.Fatalf("CheckConnection: %q, %v", status, err)
	}
	if _, err := c.GetToken(ctx, conn); !errors.Is(err, ErrAttentionRequired) {
		t.Fatalf("GetToken: %v", err)
	}
}

// The broker goes down: the bridge backs off (exponentially, with jitter) and succeeds
// once the broker is back.
func TestBridgeBacksOffWhileTheBrokerIsDown(t *testing.T) {
	tb := testbed(t)
	var mu sync.Mutex
	var delays []time.Duration
	var errs []error
	retried := make(chan struct{}, 100)
	policy := RetryPolicy{MaxAttempts: 60, BaseDelay: 50 * time.Millisecond, MaxDelay: 800 * time.Millisecond,
		OnRetry: func(attempt int, d time.Duration, err error) {
			mu.Lock()
			delays = append(delays, d)
			errs = append(errs, err)
			mu.Unlock()
			retried <- struct{}{}
		}}
	c := agentClient(t, WithRetry(policy), WithTimeout(5*time.Second))
	ctx := ctxT(t)
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	tr := c.NewTransport(tb.Connections[StrategyBasicAuth])

	control(t, http.MethodPost, "/broker/stop", nil, nil)
	started := false
	defer func() {
		if !started {
			control(t, http.MethodPost, "/broker/start", nil, nil)
		}
	}()
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tb.UpstreamURL+"/basic_auth/x", nil)
		resp, err := tr.HTTPClient().Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	// Wait until the SDK has failed three times, then bring the broker back.
	for i := 0; i < 3; i++ {
		select {
		case <-retried:
		case r := <-done:
			t.Fatalf("the request ended while the broker was down: %+v", r)
		}
	}
	control(t, http.MethodPost, "/broker/start", nil, nil)
	started = true
	r := <-done
	if r.err != nil || r.status != 200 {
		t.Fatalf("after the broker came back: %+v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, d := range delays {
		want := policy.BaseDelay << i
		if want > policy.MaxDelay {
			want = policy.MaxDelay
		}
		if d < want/2 || d > want {
			t.Fatalf("delay %d is %v, want within [%v, %v] (exponential with jitter)", i, d, want/2, want)
		}
		if !errors.Is(errs[i], ErrUnavailable) {
			t.Fatalf("retry %d after %v, want an ErrUnavailable", i, errs[i])
		}
	}
}

// No credential leaks into what a program prints or logs.
func TestTokenPrintsWithoutCredentials(t *testing.T) {
	tb := testbed(t)
	c := agentClient(t)
	tok, err := c.GetToken(ctxT(t), tb.Connections[StrategyAWSSigV4])
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{tok.String(), strings.ReplaceAll(sprintAll(tok), "\n", " ")} {
		for k, v := range tok.Credentials {
			if strings.Contains(s, v) {
				t.Fatalf("%q shows the %s value", s, k)
			}
		}
	}
}

func sprintAll(v any) string {
	var b strings.Builder
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		b.WriteString(fmt.Sprintf(f, v))
		b.WriteString(" ")
	}
	return b.String()
}

// countingRT counts the requests sent through it by method and path.
type countingRT struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingRT) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

var _ = context.Background
