package nexus

import (
	"strings"
	"testing"
)

func env(m map[string]string) Option {
	return withGetenv(func(k string) string { return m[k] })
}

func TestConfigPrecedence(t *testing.T) {
	full := map[string]string{EnvURL: "http://env.example:9000/", EnvAPIKey: "env-key"}

	// Option beats environment beats default.
	c, err := New(env(full), WithBaseURL("http://opt.example"), WithAPIKey("opt-key"))
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseURL() != "http://opt.example" || c.t.auth.(apiKeyAuth) != "opt-key" {
		t.Fatalf("options: %s %v", c.BaseURL(), c.t.auth)
	}
	c, err = New(env(full))
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseURL() != "http://env.example:9000" || c.t.auth.(apiKeyAuth) != "env-key" {
		t.Fatalf("environment: %s %v", c.BaseURL(), c.t.auth)
	}
	c, err = New(env(map[string]string{EnvAPIKey: "k"}))
	if err != nil || c.BaseURL() != DefaultBaseURL {
		t.Fatalf("default URL: %v %v", c, err)
	}

	// Client credentials from the environment make an agent client.
	c, err = New(env(map[string]string{EnvClientID: "agent-1", EnvClientSecret: "s3cret"}))
	if err != nil || c.agent == nil || c.agent.clientID != "agent-1" {
		t.Fatalf("agent from env: %v", err)
	}
	// A credential option replaces the environment's credentials as a whole.
	c, err = New(env(map[string]string{EnvClientID: "agent-1", EnvClientSecret: "s3cret"}), WithAPIKey("opt-key"))
	if err != nil || c.agent != nil {
		t.Fatalf("option over env credentials: %v", err)
	}

	// Timeouts and retries have defaults and can be set.
	s, _ := resolveSettings([]Option{env(full)}, true)
	if s.timeout != DefaultTimeout || s.retry.MaxAttempts != DefaultRetryPolicy.MaxAttempts {
		t.Fatalf("defaults: %+v", s)
	}
	s, _ = resolveSettings([]Option{env(full), WithTimeout(0), WithRetry(RetryPolicy{MaxAttempts: 1})}, true)
	if s.timeout != 0 || s.retry.MaxAttempts != 1 {
		t.Fatalf("set: %+v", s)
	}
}

func TestMissingCredentialNamesBothWays(t *testing.T) {
	_, err := New(env(nil))
	if err == nil {
		t.Fatal("no error without a credential")
	}
	for _, want := range []string{"WithAPIKey", "WithClientCredentials", EnvAPIKey, EnvClientID, EnvClientSecret} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%q does not name %s", err, want)
		}
	}
	_, err = NewAdmin(env(map[string]string{EnvClientID: "a", EnvClientSecret: "b"}))
	if err == nil || !strings.Contains(err.Error(), "WithAPIKey") || !strings.Contains(err.Error(), EnvAPIKey) {
		t.Fatalf("admin without a key: %v", err)
	}
	_, err = New(env(map[string]string{EnvClientID: "a"}))
	if err == nil || !strings.Contains(err.Error(), EnvClientSecret) {
		t.Fatalf("id without secret: %v", err)
	}
	_, err = New(env(map[string]string{EnvAPIKey: "k", EnvClientID: "a", EnvClientSecret: "topsecret"}))
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("both credentials: %v", err)
	}
	_, err = New(WithAPIKey("k"), WithBaseURL("ftp://x"))
	if err == nil || !strings.Contains(err.Error(), EnvURL) {
		t.Fatalf("bad URL: %v", err)
	}
}
