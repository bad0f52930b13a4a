package nexus

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// BridgeOption configures a [Transport] or [PerRPCCredentials].
type BridgeOption func(*bridgeOpts)

type bridgeOpts struct {
	base       http.RoundTripper
	skew       time.Duration
	defaultTTL time.Duration
	hosts      map[string]bool
	requireTLS bool
}

// WithBase sets the RoundTripper that sends the requests (default http.DefaultTransport).
func WithBase(rt http.RoundTripper) BridgeOption { return func(o *bridgeOpts) { o.base = rt } }

// WithSkew sets how long before expires_at a cached credential is refreshed (default 60s;
// never more than half of the credential's remaining life).
func WithSkew(d time.Duration) BridgeOption { return func(o *bridgeOpts) { o.skew = d } }

// WithDefaultTTL sets how long a credential without expires_at is cached (default 5m).
func WithDefaultTTL(d time.Duration) BridgeOption { return func(o *bridgeOpts) { o.defaultTTL = d } }

// WithHosts limits the credential to requests for these hosts (host or host:port as in
// the URL); requests to other hosts (a redirect elsewhere, say) go out without it.
// Without WithHosts, the credential goes only to the origin of the request the caller
// made: a redirect to another origin goes out without it.
func WithHosts(hosts ...string) BridgeOption {
	return func(o *bridgeOpts) {
		o.hosts = map[string]bool{}
		for _, h := range hosts {
			o.hosts[strings.ToLower(h)] = true
		}
	}
}

// WithTransportSecurity sets what [PerRPCCredentials.RequireTransportSecurity] answers
// (default true: the credential is only sent over TLS connections).
func WithTransportSecurity(require bool) BridgeOption {
	return func(o *bridgeOpts) { o.requireTLS = require }
}

func newBridgeOpts(opts []BridgeOption) bridgeOpts {
	o := bridgeOpts{base: http.DefaultTransport, skew: 60 * time.Second, defaultTTL: 5 * time.Minute, requireTLS: true}
	for _, f := range opts {
		f(&o)
	}
	if o.base == nil {
		o.base = http.DefaultTransport
	}
	return o
}

// credentialSource keeps one connection's credential, refreshed single-flight.
type credentialSource struct {
	c            *Client
	connectionID string // fixed target, or ""
	workspaceID  string
	providerName string
	o            bridgeOpts
	cache        flightCache[*Token]
}

func newCredentialSource(c *Client, connectionID, workspaceID, providerName string, o bridgeOpts) *credentialSource {
	s := &credentialSource{c: c, connectionID: connectionID, workspaceID: workspaceID, providerName: providerName, o: o}
	s.cache = flightCache[*Token]{clock: c.t.s.clock, fetch: s.fetch, keep: keepCredential}
	return s
}

// staleRetryInterval is how long a credential kept after a failed refresh is used
// before the refresh is tried again.
const staleRetryInterval = 5 * time.Second

// keepCredential lets a credential whose refresh ahead of expiry failed because the
// broker was unreachable or answered 5xx be used until it actually expires (retrying the
// refresh every staleRetryInterval). Any other failure (attention_required, a refused
// agent) reaches the caller.
func keepCredential(prev *Token, err error, now time.Time) (time.Time, bool) {
	var e *Error
	if prev == nil || !errors.As(err, &e) || !(e.Code == CodeUnreachable || e.Status >= 500) {
		return time.Time{}, false
	}
	until := now.Add(staleRetryInterval)
	if prev.ExpiresAt != nil {
		if !now.Before(*prev.ExpiresAt) {
			return time.Time{}, false
		}
		if prev.ExpiresAt.Before(until) {
			until = *prev.ExpiresAt
		}
	}
	return until, true
}

func (s *credentialSource) read(ctx context.Context) (*Token, error) {
	if s.connectionID != "" {
		return s.c.GetToken(ctx, s.connectionID)
	}
	return s.c.ResolveToken(ctx, s.workspaceID, s.providerName)
}

// fetch: the first time, read the credential; when it is stale or was refused upstream,
// make the broker refresh it with the provider (oauth2), or read it again (static
// credentials, which the provider does not refresh).
func (s *credentialSource) fetch(ctx context.Context, reason fetchReason, prev *Token) (*Token, time.Time, error) {
	var tok *Token
	var err error
	if reason != fetchInitial && prev != nil && prev.Strategy.Type == StrategyOAuth2 {
		tok, err = s.c.RefreshConnection(ctx, prev.ConnectionID)
		var e *Error
		if errors.As(err, &e) && e.Code == CodeRefreshNotSupported {
			tok, err = s.read(ctx)
		}
	} else {
		tok, err = s.read(ctx)
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	now := s.c.t.s.clock.Now()
	if tok.ExpiresAt == nil {
		return tok, now.Add(s.o.defaultTTL), nil
	}
	return tok, freshUntil(now, *tok.ExpiresAt, s.o.skew), nil
}

// current returns the cached credential (fetching it if needed) and its generation.
func (s *credentialSource) current(ctx context.Context) (*Token, uint64, error) {
	return s.cache.get(ctx, nil)
}

// refused returns a new credential after the one of generation gen was refused
// upstream: refreshed once however many callers report it.
func (s *credentialSource) refused(ctx context.Context, gen uint64) (*Token, uint64, error) {
	return s.cache.get(ctx, &gen)
}

// Transport is an [http.RoundTripper] that applies a connection's credential to every
// request, for every strategy type. It caches the credential until shortly before it
// expires, refreshes it once however many requests wait, and after a 401 from the
// upstream API refreshes it (once) and sends the request again, once. When the user
// must reconnect, RoundTrip fails with an error matching [ErrAttentionRequired].
//
// Request bodies are buffered when the strategy signs them (hmac_payload, aws_sigv4) or
// when the request has no GetBody to replay it after a 401.
type Transport struct {
	src *credentialSource
}

// NewTransport makes a Transport for a connection.
func (c *Client) NewTransport(connectionID string, opts ...BridgeOption) *Transport {
	return &Transport{src: newCredentialSource(c, connectionID, "", "", newBridgeOpts(opts))}
}

// NewWorkspaceTransport makes a Transport for the newest active connection of a
// workspace for a provider (GET /v1/resolve).
func (c *Client) NewWorkspaceTransport(workspaceID, providerName string, opts ...BridgeOption) *Transport {
	return &Transport{src: newCredentialSource(c, "", workspaceID, providerName, newBridgeOpts(opts))}
}

// HTTPClient returns an *http.Client that sends its requests through the Transport.
func (t *Transport) HTTPClient() *http.Client { return &http.Client{Transport: t} }

// Token returns the credential the Transport currently applies (fetching it if needed).
func (t *Transport) Token(ctx context.Context) (*Token, error) {
	tok, _, err := t.src.current(ctx)
	return tok, err
}

// RoundTrip implements [http.RoundTripper].
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	closeBody := func() {
		if req.Body != nil {
			req.Body.Close()
		}
	}
	if !t.allowed(req) {
		return t.src.o.base.RoundTrip(req)
	}
	ctx := req.Context()
	tok, gen, err := t.src.current(ctx)
	if err != nil {
		closeBody()
		return nil, err
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	signsBody := tok.Strategy.Type == StrategyHMACPayload || tok.Strategy.Type == StrategyAWSSigV4
	var body []byte
	buffered := false
	if hasBody && (signsBody || req.GetBody == nil) {
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		buffered = true
	}
	// bodyFor returns the body of an attempt: the buffered bytes, the caller's body the
	// first time, or a fresh copy from GetBody for the replay.
	bodyFor := func(attempt int) (io.ReadCloser, error) {
		switch {
		case !hasBody:
			return nil, nil
		case buffered:
			return io.NopCloser(bytes.NewReader(body)), nil
		case attempt == 0:
			return req.Body, nil
		default:
			return req.GetBody()
		}
	}
	send := func(attempt int, tok *Token) (*http.Response, error) {
		r := req.Clone(ctx)
		rc, err := bodyFor(attempt)
		if err != nil {
			return nil, err
		}
		if rc == nil {
			r.Body = nil
		} else {
			r.Body = rc
		}
		if buffered {
			r.ContentLength = int64(len(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			if len(body) == 0 {
				r.Body = http.NoBody
			}
		}
		if err := ApplyStrategy(ctx, tok, r, body, time.Time{}); err != nil {
			if r.Body != nil {
				r.Body.Close()
			}
			return nil, err
		}
		resp, err := t.src.o.base.RoundTrip(r)
		if err == nil && resp.Request == nil {
			resp.Request = r // lets the next redirect hop find this request's origin
		}
		return resp, err
	}
	resp, err := send(0, tok)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	// The upstream refused the credential: refresh it (once for all callers that saw it
	// refused) and send the request once more.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	tok, _, err = t.src.refused(ctx, gen)
	if err != nil {
		return nil, err
	}
	return send(1, tok)
}

// allowed reports whether the credential goes on req. With [WithHosts], the request's
// host must be one of them. Without it, only the origin (scheme, host and port) of the
// first request of the call: http.Client sends each redirect hop as a new request whose
// Response leads back to the request that was redirected, and a hop to another origin
// (a 302 to another host, or from https to http) goes out without the credential.
func (t *Transport) allowed(req *http.Request) bool {
	if t.src.o.hosts != nil {
		return t.src.o.hosts[strings.ToLower(req.URL.Host)]
	}
	first := req
	for first.Response != nil {
		if first.Response.Request == nil || first.Response.Request == first {
			return false // the chain is broken: the first origin is unknown
		}
		first = first.Response.Request
	}
	return first == req || origin(first.URL) == origin(req.URL)
}

// origin is a URL's scheme://host:port, lowercased, with the scheme's default port.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// CloseIdleConnections closes the idle connections of the underlying RoundTripper
// (http.Client.CloseIdleConnections calls it).
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.src.o.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
