package nexus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// strategyVector is one entry of testdata/strategy-vectors.json at the repository root: the
// same file the broker and the TypeScript and Python SDKs assert, so the strategies cannot drift.
type strategyVector struct {
	Name        string            `json:"name"`
	Strategy    Strategy          `json:"strategy"`
	Credentials map[string]string `json:"credentials"`
	Request     struct {
		Method  string            `json:"method"`
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	} `json:"request"`
	Now      string `json:"now"`
	Expected struct {
		Headers map[string]string `json:"headers"`
		URL     string            `json:"url"`
		Query   [][2]string       `json:"query"`
		Error   *struct {
			Names []string `json:"names"`
		} `json:"error"`
	} `json:"expected"`
}

func loadStrategyVectors(t *testing.T) []strategyVector {
	t.Helper()
	// go test runs in the package directory: sdks/go.
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "strategy-vectors.json"))
	if err != nil {
		t.Fatalf("reading the shared strategy vectors: %v", err)
	}
	var file struct {
		Vectors []strategyVector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("parsing the shared strategy vectors: %v", err)
	}
	return file.Vectors
}

func TestStrategyVectors(t *testing.T) {
	vectors := loadStrategyVectors(t)
	types := map[string]bool{}
	for _, v := range vectors {
		types[v.Strategy.Type] = true
	}
	for _, want := range []string{StrategyOAuth2, StrategyHeader, StrategyHeaders, StrategyQueryParam, StrategyBasicAuth, StrategyHMACPayload, StrategyAWSSigV4} {
		if !types[want] {
			t.Errorf("the vector file has no %s vector", want)
		}
	}
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			body := []byte(v.Request.Body)
			var signTime time.Time
			if v.Now != "" {
				var err error
				if signTime, err = time.Parse(time.RFC3339, v.Now); err != nil {
					t.Fatal(err)
				}
			}
			tok := &Token{ConnectionID: "c-vectors", Strategy: v.Strategy, Credentials: v.Credentials}
			apply := func(contentLength bool) (*http.Request, error) {
				// As the bridge sends it: the body buffered, its length known.
				req, err := http.NewRequestWithContext(context.Background(), v.Request.Method, v.Request.URL, bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if !contentLength {
					req.ContentLength = 0
				}
				for name, value := range v.Request.Headers {
					req.Header.Set(name, value)
				}
				return req, ApplyStrategy(context.Background(), tok, req, body, signTime)
			}
			req, err := apply(true)
			if err == nil && v.Strategy.Type == StrategyAWSSigV4 && len(body) > 0 {
				// Known drift (reported on issue #23): aws-sdk-go-v2's signer also signs content-length
				// when the request has a body; the other three signers sign only the vector's headers.
				// Valid for AWS, but another exact signature. Pinned here, so that removing the drift
				// shows up; the exact vector is asserted on the same request without its length.
				signed := req.Header.Get("Authorization")
				want := strings.Replace(v.Expected.Headers["authorization"], "SignedHeaders=", "SignedHeaders=content-length;", 1)
				if sigv4WithoutSignature(signed) != sigv4WithoutSignature(want) {
					t.Errorf("the content-length drift changed: %s", signed)
				}
				req, err = apply(false)
			}

			if v.Expected.Error != nil {
				if err == nil || !errors.Is(err, ErrStrategy) {
					t.Fatalf("want an ErrStrategy error, got %v", err)
				}
				for _, name := range v.Expected.Error.Names {
					if !strings.Contains(err.Error(), name) {
						t.Errorf("%q does not name %s", err, name)
					}
				}
				for _, value := range v.Credentials {
					if value != "" && strings.Contains(err.Error(), value) {
						t.Errorf("%q contains a credential value", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			headers := map[string]string{}
			for name, values := range req.Header {
				if lower := strings.ToLower(name); lower != "host" && lower != "content-length" {
					headers[lower] = strings.Join(values, ", ")
				}
			}
			if !reflect.DeepEqual(headers, v.Expected.Headers) {
				t.Errorf("headers\n got  %v\n want %v", headers, v.Expected.Headers)
			}
			if got := req.URL.Scheme + "://" + req.URL.Host + req.URL.EscapedPath(); got != v.Expected.URL {
				t.Errorf("url %s, want %s", got, v.Expected.URL)
			}
			// Decoded pairs; the order a client writes them in is not significant.
			var query [][2]string
			for name, values := range req.URL.Query() {
				for _, value := range values {
					query = append(query, [2]string{name, value})
				}
			}
			want := append([][2]string(nil), v.Expected.Query...)
			for _, pairs := range [][][2]string{query, want} {
				sort.Slice(pairs, func(i, j int) bool {
					return pairs[i][0] < pairs[j][0] || pairs[i][0] == pairs[j][0] && pairs[i][1] < pairs[j][1]
				})
			}
			if len(query) != len(want) || (len(want) > 0 && !reflect.DeepEqual(query, want)) {
				t.Errorf("query\n got  %v\n want %v", query, want)
			}
		})
	}
}

// sigv4WithoutSignature is a SigV4 Authorization header without its signature.
func sigv4WithoutSignature(authorization string) string {
	before, _, _ := strings.Cut(authorization, ", Signature=")
	return before
}
