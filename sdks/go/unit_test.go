package nexus

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFlightCacheFetchesOnceForManyWaiters(t *testing.T) {
	var fetches atomic.Int64
	release := make(chan struct{})
	c := &flightCache[int]{clock: systemClock{}, fetch: func(ctx context.Context, _ fetchReason, prev int) (int, time.Time, error) {
		fetches.Add(1)
		<-release
		return prev + 1, time.Now().Add(time.Hour), nil
	}}
	var wg sync.WaitGroup
	results := make([]int, 50)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, _, err := c.get(context.Background(), nil)
			if err != nil {
				t.Error(err)
			}
			results[i] = v
		}()
	}
	close(release)
	wg.Wait()
	if fetches.Load() != 1 {
		t.Fatalf("%d fetches, want 1", fetches.Load())
	}
	for _, v := range results {
		if v != 1 {
			t.Fatalf("results %v", results)
		}
	}
	// A value refused at generation 1 is fetched again once; a refusal of an older
	// generation uses the newer value.
	_, gen, _ := c.get(context.Background(), nil)
	v, gen2, _ := c.get(context.Background(), &gen)
	if v != 2 || gen2 != gen+1 || fetches.Load() != 2 {
		t.Fatalf("forced: v=%d gen=%d fetches=%d", v, gen2, fetches.Load())
	}
	v, _, _ = c.get(context.Background(), &gen)
	if v != 2 || fetches.Load() != 2 {
		t.Fatalf("stale refusal refetched: v=%d fetches=%d", v, fetches.Load())
	}
}

func TestFreshUntil(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		life, skew, want time.Duration
	}{
		{time.Hour, time.Minute, 59 * time.Minute},        // expires_at − skew
		{60 * time.Second, time.Minute, 30 * time.Second}, // at least half the remaining life
		{-time.Minute, time.Minute, 5 * time.Second},      // already expired: a short floor
	}
	for _, c := range cases {
		if got := freshUntil(now, now.Add(c.life), c.skew).Sub(now); got != c.want {
			t.Errorf("life %v skew %v: %v, want %v", c.life, c.skew, got, c.want)
		}
	}
}

func TestBackoffIsExponentialWithJitterAndCapped(t *testing.T) {
	for n := 0; n < 40; n++ {
		want := 100 * time.Millisecond << n
		if n >= 30 || want > 3*time.Second || want <= 0 {
			want = 3 * time.Second
		}
		for i := 0; i < 20; i++ {
			if d := backoff(n, 100*time.Millisecond, 3*time.Second); d < want/2 || d > want {
				t.Fatalf("n=%d: %v not in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

func TestApplyStrategyUnit(t *testing.T) {
	ctx := context.Background()
	newReq := func() *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "http://api.example/v1/x?a=1", nil)
		return r
	}
	tok := func(typ string, cfg, creds map[string]string) *Token {
		return &Token{ConnectionID: "c", Strategy: Strategy{Type: typ, Config: cfg}, Credentials: creds}
	}

	r := newReq()
	if err := ApplyStrategy(ctx, tok("header", map[string]string{"header_name": "X-Key", "value_prefix": "Token "}, map[string]string{"api_key": "k1"}), r, nil, time.Time{}); err != nil || r.Header.Get("X-Key") != "Token k1" {
		t.Fatalf("header: %v %v", r.Header, err)
	}
	r = newReq()
	ApplyStrategy(ctx, tok("header", nil, map[string]string{"api_key": "k2"}), r, nil, time.Time{})
	if r.Header.Get("Authorization") != "k2" {
		t.Fatalf("header defaults: %v", r.Header)
	}
	r = newReq()
	orig := r.URL
	ApplyStrategy(ctx, tok("query_param", map[string]string{"param_name": "key"}, map[string]string{"api_key": "a b&c"}), r, nil, time.Time{})
	if r.URL.Query().Get("key") != "a b&c" || r.URL.Query().Get("a") != "1" || orig.RawQuery != "a=1" {
		t.Fatalf("query_param: %v (original %v)", r.URL, orig)
	}
	r = newReq()
	ApplyStrategy(ctx, tok("basic_auth", map[string]string{"username_field": "u"}, map[string]string{"u": "me", "password": "pw"}), r, nil, time.Time{})
	if u, p, ok := r.BasicAuth(); !ok || u != "me" || p != "pw" {
		t.Fatalf("basic_auth: %v", r.Header)
	}
	r = newReq()
	body := []byte("exact \x00 bytes")
	ApplyStrategy(ctx, tok("hmac_payload", map[string]string{"header_name": "X-Sig", "algo": "sha1", "encoding": "base64", "secret_field": "s"}, map[string]string{"s": "key"}), r, body, time.Time{})
	m := hmac.New(sha1.New, []byte("key"))
	m.Write(body)
	if r.Header.Get("X-Sig") != base64.StdEncoding.EncodeToString(m.Sum(nil)) {
		t.Fatalf("hmac sha1/base64: %v", r.Header)
	}
	r = newReq()
	r.Header.Set("Authorization", "stale")
	err := ApplyStrategy(ctx, tok("aws_sigv4", map[string]string{"service": "svc", "region": "eu-west-1"}, map[string]string{"access_key": "AKIDEXAMPLE", "secret_key": "sk", "session_token": "st"}), r, body, time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil || !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20300102/eu-west-1/svc/aws4_request") ||
		r.Header.Get("X-Amz-Date") != "20300102T030405Z" || r.Header.Get("X-Amz-Security-Token") != "st" {
		t.Fatalf("sigv4: %v %v", r.Header, err)
	}

	// Errors name what is missing, never a value, and match ErrStrategy.
	for _, bad := range []*Token{
		tok("query_param", nil, map[string]string{"api_key": "v"}),
		tok("hmac_payload", map[string]string{"header_name": "X"}, map[string]string{}),
		tok("hmac_payload", map[string]string{"header_name": "X", "algo": "md5"}, map[string]string{"api_secret": "v"}),
		tok("aws_sigv4", nil, map[string]string{"access_key": "a", "secret_key": "b"}),
		tok("oauth2", nil, nil),
		tok("kerberos", nil, nil),
	} {
		if err := ApplyStrategy(ctx, bad, newReq(), nil, time.Time{}); err == nil || !strings.Contains(err.Error(), "strategy") {
			t.Fatalf("%v: %v", bad.Strategy, err)
		}
	}
}

func TestSecretReferenceHelpers(t *testing.T) {
	cfg := map[string]any{
		"a": "nexus-secret:one",
		"b": []any{"nexus-secret:two", map[string]any{"c": "nexus-secret:one"}, 7, nil, "nexus-secret:", "nexus-secret:bad name"},
		"d": map[string]string{"e": "nexus-secret:three"},
		"f": []string{"plain"},
	}
	if got := SecretReferences(cfg); !reflect.DeepEqual(got, []string{"one", "three", "two"}) {
		t.Fatalf("SecretReferences: %v", got)
	}
	out := ReplaceSecretReferences(cfg, map[string]string{"one": "1", "two": "2"}).(map[string]any)
	want := map[string]any{
		"a": "1",
		"b": []any{"2", map[string]any{"c": "1"}, 7, nil, "nexus-secret:", "nexus-secret:bad name"},
		"d": map[string]string{"e": "nexus-secret:three"},
		"f": []string{"plain"},
	}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("ReplaceSecretReferences:\n got %v\nwant %v", out, want)
	}
	if cfg["a"] != "nexus-secret:one" {
		t.Fatal("input modified")
	}
}

func TestPrintingHidesSecrets(t *testing.T) {
	tok := Token{ConnectionID: "c", Strategy: Strategy{Type: "basic_auth"}, Credentials: map[string]string{"username": "u", "password": "hunter2"}, AccessToken: "at-xyz"}
	sess := AgentSession{SessionID: "s", SessionToken: "eyJ.sess", AccessToken: "at-abc"}
	sec := Secret{Name: "n", Value: "v4lue"}
	for _, v := range []any{tok, &tok, sess, &sess, sec, &sec, ProviderProfile{Name: "p", ClientSecret: "cs-1"}, Agent{ClientSecret: "cs-2"}, RotatedSecret{ClientSecret: "cs-3"}} {
		s := sprintAll(v)
		for _, secret := range []string{"hunter2", "at-xyz", "eyJ.sess", "at-abc", "v4lue", "cs-1", "cs-2", "cs-3"} {
			if strings.Contains(s, secret) {
				t.Fatalf("%T prints %s: %s", v, secret, s)
			}
		}
	}
}
