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
	"net/http/httptest"
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

// seen is what a test server received: headers and URL.
type seen struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (s *seen) add(r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, &http.Request{Method: r.Method, URL: r.URL, Header: r.Header.Clone(), Host: r.Host})
}

func (s *seen) all() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.reqs...)
}

// carriesCredential reports whether a received request holds any part of a credential
// (a header the strategies set, the api_key query parameter, or a credential value).
func carriesCredential(r *http.Request, tok *Token) bool {
	for _, h := range []string{"Authorization", "X-Api-Key", "X-Signature", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256"} {
		if r.Header.Get(h) != "" {
			return true
		}
	}
	if r.URL.Query().Has("api_key") {
		return true
	}
	dump := r.URL.String() + " " + fmt.Sprint(r.Header)
	for _, v := range tok.Credentials {
		if len(v) >= 4 && strings.Contains(dump, v) {
			return true
		}
	}
	return false
}

// A redirect to another origin must not carry the credential: without WithHosts the
// credential goes only to the origin the caller sent the request to.
func TestBridgeDoesNotSendTheCredentialAcrossARedirect(t *testing.T) {
	tb := testbed(t)
	c := agentClient(t)
	ctx := ctxT(t)
	for _, s := range strategies {
		t.Run(s, func(t *testing.T) {
			var onA, onB seen
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				onB.add(r)
				w.Write([]byte("stolen"))
			}))
			defer other.Close()
			// The same server, reached by another host name: another origin.
			otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
			api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				onA.add(r)
				switch r.URL.Path {
				case "/away":
					http.Redirect(w, r, otherURL+"/steal", http.StatusFound)
				case "/same":
					http.Redirect(w, r, "/landed", http.StatusFound)
				default:
					w.Write([]byte("ok"))
				}
			}))
			defer api.Close()
			tr := c.NewTransport(tb.Connections[s])
			hc := tr.HTTPClient()
			for _, path := range []string{"/away", "/same"} {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api.URL+path, nil)
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			tok, err := tr.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			a, b := onA.all(), onB.all()
			if len(a) != 3 || len(b) != 1 {
				t.Fatalf("the API saw %d requests and the other host %d, want 3 and 1", len(a), len(b))
			}
			for _, r := range a {
				if !carriesCredential(r, tok) {
					t.Fatalf("the API's own request %s came without the credential", r.URL)
				}
			}
			if carriesCredential(b[0], tok) {
				t.Fatalf("the credential went to the other host: %s %v", b[0].URL, b[0].Header)
			}
		})
	}
}

func TestBridgeAllowedOrigin(t *testing.T) {
	tr := &Transport{src: &credentialSource{}}
	first, _ := http.NewRequest(http.MethodGet, "https://API.example.com/x", nil)
	hop := func(prev *http.Request, to string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, to, nil)
		r.Response = &http.Response{StatusCode: 302, Request: prev}
		return r
	}
	for _, tc := range []struct {
		req  *http.Request
		want bool
	}{
		{first, true},
		{hop(first, "https://api.example.com:443/y"), true},
		{hop(hop(first, "https://api.example.com/y"), "https://api.example.com/z"), true},
		{hop(first, "http://api.example.com/y"), false},       // https → http
		{hop(first, "https://api.example.com:8443/y"), false}, // another port
		{hop(first, "https://evil.example/steal"), false},
		{hop(hop(first, "https://evil.example/a"), "https://api.example.com/b"), true}, // back home
		{hop(nil, "https://api.example.com/y"), false},                                 // unknown origin
	} {
		if got := tr.allowed(tc.req); got != tc.want {
			t.Errorf("%s: allowed %v, want %v", tc.req.URL, got, tc.want)
		}
	}
	// WithHosts decides by itself.
	tr = &Transport{src: &credentialSource{o: newBridgeOpts([]BridgeOption{WithHosts("evil.example")})}}
	if !tr.allowed(hop(first, "https://evil.example/x")) || tr.allowed(first) {
		t.Error("WithHosts is not what decides")
	}
}

// Refreshing ahead of expiry while the broker is down: the cached credential, not yet
// expired, is used; once it has expired the request fails.
func TestBridgeKeepsTheCredentialWhenRefreshAheadOfExpiryFails(t *testing.T) {
	tb := testbed(t)
	conn, _ := connect(t, StrategyOAuth2)
	clock := &fakeClock{}
	c := agentClient(t, WithClock(clock), WithRetry(RetryPolicy{MaxAttempts: 2, BaseDelay: 10 * time.Millisecond}), WithTimeout(5*time.Second))
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
		t.Fatalf("token %v, %v", first, err)
	}
	control(t, http.MethodPost, "/broker/stop", nil, nil)
	started := false
	defer func() {
		if !started {
			control(t, http.MethodPost, "/broker/start", nil, nil)
		}
	}()
	// Stale (inside the skew) but not expired: the refresh fails, the request succeeds
	// with the cached credential.
	clock.Set(first.ExpiresAt.Add(-30 * time.Second))
	for i := 0; i < 2; i++ {
		if status, _ := call(t, hc, get()); status != 200 {
			t.Fatalf("request %d with the broker down before expiry: %d, want 200", i, status)
		}
	}
	if cur, err := tr.Token(ctx); err != nil || cur.AccessToken != first.AccessToken {
		t.Fatalf("Token: %v", err)
	}
	// Expired: the request fails with the broker's unavailability.
	clock.Set(first.ExpiresAt.Add(time.Second))
	resp, err := hc.Do(get())
	if err == nil {
		resp.Body.Close()
		t.Fatalf("status %d after expiry with the broker down, want an error", resp.StatusCode)
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("after expiry: %v, want ErrUnavailable", err)
	}
	control(t, http.MethodPost, "/broker/start", nil, nil)
	started = true
	// Back up: the next request refreshes.
	if status, _ := call(t, hc, get()); status != 200 {
		t.Fatalf("after the broker came back: %d", status)
	}
	if cur, _ := tr.Token(ctx); cur.AccessToken == first.AccessToken {
		t.Fatal("the credential was not refreshed once the broker was back")
	}
}

func TestKeepCredential(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	exp := now.Add(30 * time.Second)
	tok := &Token{ExpiresAt: &exp}
	for _, tc := range []struct {
		name string
		tok  *Token
		err  error
		want bool
	}{
		{"unreachable", tok, &Error{Code: CodeUnreachable}, true},
		{"503", tok, &Error{Status: 503, Code: "service_unavailable"}, true},
		{"500", tok, &Error{Status: 500, Code: "internal_error"}, true},
		{"attention required", tok, &Error{Status: 409, Code: "attention_required"}, false},
		{"unauthorized", tok, &Error{Status: 401, Code: "unauthorized"}, false},
		{"not an API error", tok, errors.New("boom"), false},
		{"expired", &Token{ExpiresAt: &now}, &Error{Code: CodeUnreachable}, false},
		{"no expiry", &Token{}, &Error{Code: CodeUnreachable}, true},
	} {
		until, ok := keepCredential(tc.tok, tc.err, now)
		if ok != tc.want {
			t.Errorf("%s: kept %v, want %v", tc.name, ok, tc.want)
		}
		if ok && (until.After(now.Add(staleRetryInterval)) || (tc.tok.ExpiresAt != nil && until.After(*tc.tok.ExpiresAt))) {
			t.Errorf("%s: kept until %v", tc.name, until)
		}
	}
	short := now.Add(time.Second)
	if until, ok := keepCredential(&Token{ExpiresAt: &short}, &Error{Code: CodeUnreachable}, now); !ok || !until.Equal(short) {
		t.Errorf("kept until %v, want its expiry %v", until, short)
	}
}
