package nexus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxBody bounds what the SDK reads from the broker (its largest answers are a few kB).
const maxBody = 8 << 20

// authorizer puts the caller's credential on a broker request. relogin is true when the
// previous attempt got a 401 with a cached credential: log in again.
type authorizer interface {
	authorize(ctx context.Context, req *http.Request, relogin bool) error
}

type apiKeyAuth string

func (k apiKeyAuth) authorize(_ context.Context, req *http.Request, _ bool) error {
	req.Header.Set("X-API-Key", string(k))
	return nil
}

// transport is the broker's HTTP plumbing shared by Client and Admin.
type transport struct {
	s    *settings
	auth authorizer
	// sleep waits between retries (replaced in tests only through the retry policy's delays).
	sleep func(ctx context.Context, d time.Duration) error
}

func newTransport(s *settings, auth authorizer) *transport {
	return &transport{s: s, auth: auth, sleep: sleepCtx}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// request describes one broker call.
type request struct {
	method string
	path   string // already escaped
	op     string // for errors: "GET /v1/token/{id}"
	query  url.Values
	json   any         // JSON body
	form   url.Values  // form body (agent login)
	header http.Header // extra headers
	noAuth bool
	// idempotent marks a POST that is safe to send twice (a login, a read); other
	// methods are judged by isIdempotent.
	idempotent bool
}

// isIdempotent reports whether the call may be sent again after a failure that may have
// reached the broker (a timeout, a reset, a 502 or 504): never for a plain POST, which
// the broker may have processed already (a duplicate connection request, say).
func (r request) isIdempotent() bool {
	switch r.method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return r.idempotent
}

// do performs the call with retries and decodes a 2xx JSON answer into out (if non-nil).
func (t *transport) do(ctx context.Context, r request, out any) error {
	var body []byte
	contentType := ""
	switch {
	case r.json != nil:
		b, err := json.Marshal(r.json)
		if err != nil {
			return fmt.Errorf("nexus: encoding the %s body: %w", r.op, err)
		}
		body, contentType = b, "application/json"
	case r.form != nil:
		body, contentType = []byte(r.form.Encode()), "application/x-www-form-urlencoded"
	}
	u := t.s.baseURL + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	p := t.s.retry
	relogin := false
	reloggedIn := false
	for attempt := 1; ; attempt++ {
		status, hdr, respBody, err := t.once(ctx, r, u, body, contentType, relogin)
		relogin = false
		var nerr *Error
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			var authErr *Error
			if errors.As(err, &authErr) {
				// The agent login failed: that is the answer.
				return authErr
			}
			nerr = &Error{Op: r.op, Code: CodeUnreachable, Err: redactURLError(err)}
		case status >= 200 && status < 300:
			if out == nil || len(respBody) == 0 {
				return nil
			}
			if err := json.Unmarshal(respBody, out); err != nil {
				return &Error{Op: r.op, Status: status, Code: "invalid_response", Message: "the answer is not the expected JSON", RequestID: hdr.Get("X-Request-Id"), Err: err}
			}
			return nil
		default:
			nerr = parseError(r.op, status, hdr, respBody)
		}
		nerr.Attempts = attempt
		// A 401 with an agent token: the token may have been revoked or the broker's
		// signing key rotated; log in again once, without counting it as a retry.
		if nerr.Status == http.StatusUnauthorized && !r.noAuth && !reloggedIn {
			if _, ok := t.auth.(*agentAuth); ok {
				reloggedIn, relogin = true, true
				attempt--
				continue
			}
		}
		delay, retry := t.retryDelay(nerr, attempt, p, r.isIdempotent())
		if !retry {
			return nerr
		}
		if p.OnRetry != nil {
			p.OnRetry(attempt, delay, nerr)
		}
		if err := t.sleep(ctx, delay); err != nil {
			return err
		}
	}
}

// retryDelay decides whether and how long to wait before the next attempt. A call that
// is not idempotent is retried only when the broker certainly did not process it: the
// connection could not be made, or the broker answered 503 or 429.
func (t *transport) retryDelay(e *Error, attempt int, p RetryPolicy, idempotent bool) (time.Duration, bool) {
	if attempt >= p.MaxAttempts {
		return 0, false
	}
	switch e.Status {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
	case 0:
		if !idempotent && !notSent(e.Err) {
			return 0, false
		}
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		if !idempotent {
			return 0, false
		}
	default:
		return 0, false
	}
	if e.RetryAfter > 0 {
		if e.RetryAfter > p.MaxRetryAfter {
			return 0, false
		}
		return e.RetryAfter, true
	}
	return backoff(attempt-1, p.BaseDelay, p.MaxDelay), true
}

// notSent reports whether a transport error certainly happened before the request was
// sent: the connection could not be made (refused, no route, name not resolved).
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// backoff is BaseDelay·2ⁿ capped at MaxDelay, jittered to a random value in [d/2, d].
func backoff(n int, base, max time.Duration) time.Duration {
	d := max
	if n < 30 {
		if e := base << n; e > 0 && e < max {
			d = e
		}
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}

// once is one attempt.
func (t *transport) once(ctx context.Context, r request, u string, body []byte, contentType string, relogin bool) (int, http.Header, []byte, error) {
	if t.s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.s.timeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", t.s.userAgent)
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if !r.noAuth {
		if err := t.auth.authorize(ctx, req, relogin); err != nil {
			return 0, nil, nil, err
		}
	}
	resp, err := t.s.httpClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, b, nil
}

// redactURLError drops the query string from a *url.Error (it may hold a workspace id;
// never a secret, but keep messages short and predictable).
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if i := strings.IndexByte(ue.URL, '?'); i >= 0 {
			return &url.Error{Op: ue.Op, URL: ue.URL[:i], Err: ue.Err}
		}
	}
	return err
}

// pathEscape escapes one path segment.
func pathEscape(s string) string { return url.PathEscape(s) }
