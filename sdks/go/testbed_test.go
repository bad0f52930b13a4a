package nexus

// The harness of the integration tests: the SDK testbed (sdks/testbed/testbed.ts) started
// once, lazily, by the first test that needs it: a real OpenID provider, the project's own
// broker (`nexus serve`) on a temporary SQLite file, and an upstream API that checks the
// credential each strategy applies. It is stopped by TestMain.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

type testbedInfo struct {
	BrokerURL   string            `json:"broker_url"`
	AdminKey    string            `json:"admin_key"`
	UpstreamURL string            `json:"upstream_url"`
	ControlURL  string            `json:"control_url"`
	OIDCIssuer  string            `json:"oidc_issuer"`
	WorkspaceID string            `json:"workspace_id"`
	Providers   map[string]string `json:"providers"`
	Connections map[string]string `json:"connections"`
	Scopes      []string          `json:"scopes"`
	Agent       struct {
		AgentID      string `json:"agent_id"`
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	} `json:"agent"`
	UserSecrets map[string]string `json:"user_secrets"`
}

var strategies = []string{StrategyOAuth2, StrategyHeader, StrategyHeaders, StrategyQueryParam, StrategyBasicAuth, StrategyHMACPayload, StrategyAWSSigV4}

var (
	tbOnce   sync.Once
	tbInfo   *testbedInfo
	tbErr    error
	tbCmd    *exec.Cmd
	tbStdin  io.WriteCloser
	tbStderr syncBuffer
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) tail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.b.Bytes()
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func TestMain(m *testing.M) {
	code := m.Run()
	stopTestbed()
	os.Exit(code)
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

func startTestbed() (*testbedInfo, error) {
	node := os.Getenv("NEXUS_TESTBED_NODE")
	if node == "" {
		node = filepath.Join(repoRoot(), "node_modules", ".bin", "node")
	}
	script := filepath.Join(repoRoot(), "sdks", "testbed", "testbed.ts")
	cmd := exec.Command(node, script)
	cmd.Stderr = &tbStderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the testbed (%s %s): %w", node, script, err)
	}
	tbCmd, tbStdin = cmd, stdin
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- line
		io.Copy(io.Discard, r) // keep draining so the testbed never blocks on stdout
	}()
	select {
	case line := <-lines:
		var info testbedInfo
		if err := json.Unmarshal([]byte(line), &info); err != nil {
			return nil, fmt.Errorf("the testbed did not print its JSON line (%v); stderr:\n%s", err, tbStderr.tail())
		}
		return &info, nil
	case <-time.After(120 * time.Second):
		return nil, fmt.Errorf("the testbed was not ready within 120s; stderr:\n%s", tbStderr.tail())
	}
}

func stopTestbed() {
	if tbCmd == nil {
		return
	}
	// Closing stdin makes the testbed stop its broker, provider and upstream, then exit.
	tbStdin.Close()
	done := make(chan struct{})
	go func() { tbCmd.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(15 * time.Second):
	}
	tbCmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		tbCmd.Process.Kill()
		<-done
	}
}

// testbed returns the running testbed, starting it on first use; a testbed that cannot
// start fails the test (it is never skipped).
func testbed(t *testing.T) *testbedInfo {
	t.Helper()
	tbOnce.Do(func() { tbInfo, tbErr = startTestbed() })
	if tbErr != nil {
		t.Fatalf("testbed: %v", tbErr)
	}
	return tbInfo
}

// control calls the testbed's control API.
func control(t *testing.T, method, path string, body, out any) {
	t.Helper()
	tb := testbed(t)
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, tb.ControlURL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("control %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("control %s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("control %s %s: %v", method, path, err)
		}
	}
}

type stats struct {
	IDP struct {
		AuthorizationCode int `json:"authorization_code"`
		RefreshToken      int `json:"refresh_token"`
		Revocation        int `json:"revocation"`
	} `json:"idp"`
	Upstream map[string]struct {
		Accepted int `json:"accepted"`
		Rejected int `json:"rejected"`
	} `json:"upstream"`
}

func getStats(t *testing.T) stats {
	t.Helper()
	var s stats
	control(t, http.MethodGet, "/stats", nil, &s)
	return s
}

// connect makes a new active connection for a strategy in a workspace of its own.
func connect(t *testing.T, strategy string) (connectionID, workspaceID string) {
	t.Helper()
	ws := fmt.Sprintf("go-%s-%d", t.Name(), time.Now().UnixNano())
	if len(ws) > 150 {
		ws = ws[:150]
	}
	var out struct {
		ConnectionID string `json:"connection_id"`
		WorkspaceID  string `json:"workspace_id"`
	}
	control(t, http.MethodPost, "/connect", map[string]string{"strategy": strategy, "workspace_id": ws}, &out)
	return out.ConnectionID, out.WorkspaceID
}

// agentClient is a Client that logs in as the testbed's agent.
func agentClient(t *testing.T, opts ...Option) *Client {
	t.Helper()
	tb := testbed(t)
	base := []Option{WithBaseURL(tb.BrokerURL), WithClientCredentials(tb.Agent.ClientID, tb.Agent.ClientSecret), withGetenv(noEnv)}
	c, err := New(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// adminClient is an Admin with the testbed's admin key.
func adminClient(t *testing.T, opts ...Option) *Admin {
	t.Helper()
	tb := testbed(t)
	a, err := NewAdmin(append([]Option{WithBaseURL(tb.BrokerURL), WithAPIKey(tb.AdminKey), withGetenv(noEnv)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func noEnv(string) string { return "" }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// upstreamAnswer is the upstream verifier's 200 body.
type upstreamAnswer struct {
	OK         bool   `json:"ok"`
	Strategy   string `json:"strategy"`
	Method     string `json:"method"`
	Path       string `json:"path"`
	BodySHA256 string `json:"body_sha256"`
}

// call sends a request with an http.Client and returns the status and decoded 200 body.
func call(t *testing.T, hc *http.Client, req *http.Request) (int, upstreamAnswer) {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a upstreamAnswer
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatalf("upstream answer: %v: %s", err, b)
		}
	}
	return resp.StatusCode, a
}

// fakeClock is real time plus an offset the test moves forward.
type fakeClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *fakeClock) Set(to time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off = time.Until(to)
}
