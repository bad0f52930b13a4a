package nexus

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Environment variables read when the matching option is not given.
const (
	EnvURL          = "NEXUS_URL"
	EnvAPIKey       = "NEXUS_API_KEY"
	EnvClientID     = "NEXUS_CLIENT_ID"
	EnvClientSecret = "NEXUS_CLIENT_SECRET"
)

// Defaults.
const (
	DefaultBaseURL = "http://localhost:8080"
	DefaultTimeout = 30 * time.Second
)

// Clock tells the time. The SDK reads it to decide when a cached credential or agent
// token is stale; inject one with [WithClock] to test expiry deterministically.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// RetryPolicy bounds the retries of calls to the broker. A call is retried when the
// connection could not be made, and on 429 (honouring Retry-After) and 503. Idempotent
// calls (GET, PUT, DELETE, the agent login, resolving secrets) are also retried after a
// reset or timed-out connection, 502 and 504; other POSTs are not, since the broker may
// have processed them. The delay before retry n (0-based) is
// BaseDelay·2ⁿ capped at MaxDelay, with jitter (a random value between half and all of it).
type RetryPolicy struct {
	// MaxAttempts is the total number of tries, the first included (1 disables retries).
	MaxAttempts int
	BaseDelay   time.Duration
	MaxDelay    time.Duration
	// MaxRetryAfter caps the Retry-After the SDK waits for; a longer one ends the retries.
	MaxRetryAfter time.Duration
	// OnRetry, if set, is called before each wait (attempt is the 1-based try that failed).
	// It must not block. Useful for logging or metrics.
	OnRetry func(attempt int, delay time.Duration, err error)
}

// DefaultRetryPolicy is used when [WithRetry] is not given.
var DefaultRetryPolicy = RetryPolicy{
	MaxAttempts:   4,
	BaseDelay:     200 * time.Millisecond,
	MaxDelay:      5 * time.Second,
	MaxRetryAfter: 30 * time.Second,
}

func (p RetryPolicy) normalized() RetryPolicy {
	if p.MaxAttempts < 1 {
		p.MaxAttempts = 1
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultRetryPolicy.BaseDelay
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = p.BaseDelay
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = DefaultRetryPolicy.MaxRetryAfter
	}
	return p
}

// Option configures a [Client] or an [Admin].
type Option func(*config)

type config struct {
	baseURL      *string
	apiKey       *string
	clientID     *string
	clientSecret *string
	scope        string
	httpClient   *http.Client
	retry        *RetryPolicy
	timeout      *time.Duration
	clock        Clock
	userAgent    string
	tokenSkew    time.Duration
	getenv       func(string) string
}

// WithBaseURL sets the broker's URL (default: $NEXUS_URL, then http://localhost:8080).
func WithBaseURL(u string) Option { return func(c *config) { c.baseURL = &u } }

// WithAPIKey authenticates with an admin API key (X-API-Key). Default: $NEXUS_API_KEY.
func WithAPIKey(key string) Option { return func(c *config) { c.apiKey = &key } }

// WithClientCredentials authenticates as an agent: the SDK logs in at POST /oauth/token
// (client_credentials) and logs in again shortly before the access token expires.
// Default: $NEXUS_CLIENT_ID and $NEXUS_CLIENT_SECRET.
func WithClientCredentials(clientID, clientSecret string) Option {
	return func(c *config) { c.clientID, c.clientSecret = &clientID, &clientSecret }
}

// WithScope sets the scope asked for at agent login (space-separated; default none).
func WithScope(scope string) Option { return func(c *config) { c.scope = scope } }

// WithHTTPClient sets the HTTP client used to talk to the broker. Its Timeout, if any,
// applies on top of [WithTimeout].
func WithHTTPClient(h *http.Client) Option { return func(c *config) { c.httpClient = h } }

// WithRetry sets the retry policy (default [DefaultRetryPolicy]).
func WithRetry(p RetryPolicy) Option { return func(c *config) { c.retry = &p } }

// WithTimeout bounds each attempt of each call (default 30s; zero or less: no bound
// besides the context's).
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = &d } }

// WithClock sets the clock used for cache and token expiry decisions.
func WithClock(clock Clock) Option { return func(c *config) { c.clock = clock } }

// WithUserAgent sets the User-Agent sent to the broker.
func WithUserAgent(ua string) Option { return func(c *config) { c.userAgent = ua } }

// WithTokenSkew sets how long before its expiry the agent access token is renewed (default 30s).
func WithTokenSkew(d time.Duration) Option { return func(c *config) { c.tokenSkew = d } }

// withGetenv replaces os.Getenv (tests).
func withGetenv(f func(string) string) Option { return func(c *config) { c.getenv = f } }

// settings is the resolved, validated configuration.
type settings struct {
	baseURL      string
	apiKey       string
	clientID     string
	clientSecret string
	scope        string
	httpClient   *http.Client
	retry        RetryPolicy
	timeout      time.Duration
	clock        Clock
	userAgent    string
	tokenSkew    time.Duration
}

const userAgent = "nexus-go-sdk/" + Version

// Version of this SDK.
const Version = "0.1.0"

// resolve applies option → environment → default. needAgent: whether client credentials
// are acceptable (Client) or only an API key (Admin).
func resolveSettings(opts []Option, allowAgent bool) (*settings, error) {
	c := &config{getenv: os.Getenv}
	for _, o := range opts {
		o(c)
	}
	s := &settings{
		scope:      c.scope,
		httpClient: c.httpClient,
		retry:      DefaultRetryPolicy,
		timeout:    DefaultTimeout,
		clock:      c.clock,
		userAgent:  c.userAgent,
		tokenSkew:  c.tokenSkew,
	}
	pick := func(opt *string, env string) string {
		if opt != nil {
			return strings.TrimSpace(*opt)
		}
		return strings.TrimSpace(c.getenv(env))
	}
	s.baseURL = pick(c.baseURL, EnvURL)
	if s.baseURL == "" {
		s.baseURL = DefaultBaseURL
	}
	u, err := url.Parse(s.baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("nexus: the broker URL %q is not an absolute http(s) URL (set it with nexus.WithBaseURL or %s)", s.baseURL, EnvURL)
	}
	s.baseURL = strings.TrimRight(s.baseURL, "/")

	// Credentials: options win as a whole over the environment, so an explicit
	// WithAPIKey is never mixed with a client id from the environment.
	optGiven := c.apiKey != nil || c.clientID != nil
	if optGiven {
		if c.apiKey != nil {
			s.apiKey = strings.TrimSpace(*c.apiKey)
		}
		if c.clientID != nil {
			s.clientID, s.clientSecret = strings.TrimSpace(*c.clientID), *c.clientSecret
		}
	} else {
		s.apiKey = strings.TrimSpace(c.getenv(EnvAPIKey))
		if allowAgent {
			s.clientID = strings.TrimSpace(c.getenv(EnvClientID))
			s.clientSecret = c.getenv(EnvClientSecret)
		}
	}
	if !allowAgent {
		s.clientID, s.clientSecret = "", ""
	}
	src := "options"
	if !optGiven {
		src = "environment"
	}
	switch {
	case s.apiKey != "" && s.clientID != "":
		return nil, fmt.Errorf("nexus: both an API key and agent client credentials are set (in the %s); use one: nexus.WithAPIKey / %s, or nexus.WithClientCredentials / %s and %s",
			src, EnvAPIKey, EnvClientID, EnvClientSecret)
	case s.clientID != "" && s.clientSecret == "":
		return nil, fmt.Errorf("nexus: an agent client id is set but no client secret: pass it to nexus.WithClientCredentials or set %s", EnvClientSecret)
	case s.clientID == "" && s.clientSecret != "":
		return nil, fmt.Errorf("nexus: an agent client secret is set but no client id: pass it to nexus.WithClientCredentials or set %s", EnvClientID)
	case s.apiKey == "" && s.clientID == "":
		if !allowAgent {
			return nil, errors.New("nexus: no admin API key: pass nexus.WithAPIKey(key) or set " + EnvAPIKey)
		}
		return nil, fmt.Errorf("nexus: no credential: pass nexus.WithAPIKey(key) or nexus.WithClientCredentials(id, secret), or set %s (or %s and %s) in the environment",
			EnvAPIKey, EnvClientID, EnvClientSecret)
	}

	if c.retry != nil {
		s.retry = *c.retry
	}
	s.retry = s.retry.normalized()
	if c.timeout != nil {
		s.timeout = *c.timeout
	}
	if s.httpClient == nil {
		s.httpClient = &http.Client{}
	}
	if s.clock == nil {
		s.clock = systemClock{}
	}
	if s.userAgent == "" {
		s.userAgent = userAgent
	}
	if s.tokenSkew <= 0 {
		s.tokenSkew = 30 * time.Second
	}
	return s, nil
}
