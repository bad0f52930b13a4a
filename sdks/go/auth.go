package nexus

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// agentAuth logs in as an agent (RFC 6749 §4.4 client credentials at POST /oauth/token)
// and keeps the access token until shortly before it expires, single-flight.
type agentAuth struct {
	t            *transport // set after construction (the login call uses it without auth)
	clientID     string
	clientSecret string
	scope        string
	skew         time.Duration
	cache        flightCache[agentToken]
}

type agentToken struct {
	accessToken string
	expiresAt   time.Time
}

type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
}

func newAgentAuth(s *settings) *agentAuth {
	a := &agentAuth{clientID: s.clientID, clientSecret: s.clientSecret, scope: s.scope, skew: s.tokenSkew}
	a.cache = flightCache[agentToken]{clock: s.clock, fetch: a.login}
	return a
}

func (a *agentAuth) login(ctx context.Context, _ fetchReason, _ agentToken) (agentToken, time.Time, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {a.clientID}, "client_secret": {a.clientSecret}}
	if a.scope != "" {
		form.Set("scope", a.scope)
	}
	var out tokenAnswer
	err := a.t.do(ctx, request{method: http.MethodPost, path: "/oauth/token", op: "POST /oauth/token", form: form, noAuth: true, idempotent: true}, &out)
	if err != nil {
		return agentToken{}, time.Time{}, err
	}
	now := a.t.s.clock.Now()
	exp := now.Add(time.Duration(out.ExpiresIn) * time.Second)
	return agentToken{accessToken: out.AccessToken, expiresAt: exp}, freshUntil(now, exp, a.skew), nil
}

// token returns the current access token, logging in when needed.
func (a *agentAuth) token(ctx context.Context, relogin bool) (string, error) {
	var stale *uint64
	if relogin {
		// Whatever is cached was refused: a new login unless one already happened.
		a.cache.mu.Lock()
		g := a.cache.gen
		a.cache.mu.Unlock()
		stale = &g
	}
	tok, _, err := a.cache.get(ctx, stale)
	if err != nil {
		return "", err
	}
	return tok.accessToken, nil
}

func (a *agentAuth) authorize(ctx context.Context, req *http.Request, relogin bool) error {
	tok, err := a.token(ctx, relogin)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}
