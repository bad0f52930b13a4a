package nexus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestConnectionLifecycle(t *testing.T) {
	tb := testbed(t)
	c := agentClient(t)
	ctx := ctxT(t)

	started, err := c.RequestConnection(ctx, RequestConnectionInput{
		UserID: "go-lifecycle", ProviderName: tb.Providers[StrategyHeader], ReturnURL: "http://localhost:3000/connected",
	})
	if err != nil {
		t.Fatal(err)
	}
	if started.AuthURL == "" || started.ConnectionID == "" || started.State == "" {
		t.Fatalf("RequestConnection: %+v", started)
	}
	if status, err := c.CheckConnection(ctx, started.ConnectionID); err != nil || status != StatusPending {
		t.Fatalf("CheckConnection: %q, %v", status, err)
	}
	// Still pending: WaitForActive keeps polling until the context ends.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = c.WaitForActive(short, started.ConnectionID, 50*time.Millisecond)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForActive on a pending connection: %v", err)
	}
	if _, err := c.GetToken(ctx, started.ConnectionID); !errors.Is(err, ErrNotActive) {
		t.Fatalf("GetToken of a pending connection: %v", err)
	}
	rev, err := c.RevokeConnection(ctx, started.ConnectionID, "test")
	if err != nil || rev.Status != StatusRevoked || rev.AlreadyRevoked {
		t.Fatalf("RevokeConnection: %+v, %v", rev, err)
	}
	again, err := c.RevokeConnection(ctx, started.ConnectionID, "")
	if err != nil || !again.AlreadyRevoked {
		t.Fatalf("second RevokeConnection: %+v, %v", again, err)
	}
	status, err := c.WaitForActive(ctx, started.ConnectionID, 10*time.Millisecond)
	if status != StatusRevoked || !errors.Is(err, ErrNotActive) {
		t.Fatalf("WaitForActive on a revoked connection: %q, %v", status, err)
	}

	// An active one.
	if status, err := c.WaitForActive(ctx, tb.Connections[StrategyOAuth2], 0); err != nil || status != StatusActive {
		t.Fatalf("WaitForActive: %q, %v", status, err)
	}
}

// Issue #20: the testbed's providers declare no per-connection parameters, so the broker refuses
// the name it was sent (and creates nothing): the field reached it.
func TestRequestConnectionSendsConnectionConfig(t *testing.T) {
	tb := testbed(t)
	c := agentClient(t)
	_, err := c.RequestConnection(ctxT(t), RequestConnectionInput{
		UserID: "go-connection-config", ProviderName: tb.Providers[StrategyOAuth2],
		ReturnURL: "http://localhost:3000/connected", ConnectionConfig: map[string]string{"tenant": "acme"},
	})
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrBadRequest) || e.Status != 400 || e.Code != "invalid_connection_config" {
		t.Fatalf("connection_config for a provider without parameters: %#v", err)
	}
	if !strings.Contains(e.Message, "tenant is not a connection parameter") {
		t.Fatalf("message %q does not name the parameter", e.Message)
	}
}

func TestCreateConnectSession(t *testing.T) {
	tb := testbed(t)
	c := agentClient(t)
	wanted := []string{tb.Providers[StrategyHeader], tb.Providers[StrategyOAuth2]}
	sort.Strings(wanted)
	s, err := c.CreateConnectSession(ctxT(t), ConnectSessionInput{
		UserID: "go-connect-session", Providers: wanted, ReturnURL: "http://localhost:3000/connected",
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range s.Providers {
		got = append(got, p.Name)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(wanted, ",") || !strings.Contains(s.URL, s.Token) || s.Token == "" {
		t.Fatalf("CreateConnectSession: %v", s)
	}
	if strings.Contains(fmt.Sprintf("%v %#v", s, s), s.Token) {
		t.Fatal("the session's capability is printed")
	}
	resp, err := http.Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	for _, name := range wanted {
		if resp.StatusCode != 200 || !strings.Contains(string(page), name) {
			t.Fatalf("the page (status %d) does not offer %s", resp.StatusCode, name)
		}
	}
}

// The testbed's broker has no verifier page (NEXUS_CONNECT_VERIFIER_URL): asking for one is
// refused and nothing is created, so the field reached it; an unknown flow is not found.
func TestVerifyAndConfirmReachTheBroker(t *testing.T) {
	tb := testbed(t)
	c := agentClient(t)
	verify := true
	_, err := c.RequestConnection(ctxT(t), RequestConnectionInput{
		UserID: "go-verify", ProviderName: tb.Providers[StrategyOAuth2],
		ReturnURL: "http://localhost:3000/connected", Verify: &verify,
	})
	var e *Error
	if !errors.As(err, &e) || e.Code != "verifier_not_configured" {
		t.Fatalf("verify without a verifier: %#v", err)
	}
	_, err = c.CreateConnectSession(ctxT(t), ConnectSessionInput{
		UserID: "go-verify", ReturnURL: "http://localhost:3000/connected", Verify: &verify,
	})
	if !errors.As(err, &e) || e.Code != "verifier_not_configured" {
		t.Fatalf("verify without a verifier (connect session): %#v", err)
	}
	_, err = c.ConfirmConnection(ctxT(t), "no-such-flow", "go-verify")
	if !errors.As(err, &e) || !errors.Is(err, ErrNotFound) || e.Code != "confirm_flow_unknown" {
		t.Fatalf("unknown flow: %#v", err)
	}
}

func TestTokenCalls(t *testing.T) {
	tb := testbed(t)
	c := agentClient(t)
	ctx := ctxT(t)
	conn, ws := connect(t, StrategyOAuth2)

	tok, err := c.GetToken(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Strategy.Type != StrategyOAuth2 || tok.AccessToken == "" || tok.TokenType == "" || tok.ExpiresAt == nil ||
		tok.ConnectionID != conn || tok.ProviderName != tb.Providers[StrategyOAuth2] {
		t.Fatalf("GetToken: %v (token_type %q)", tok, tok.TokenType)
	}
	if _, ok := tok.Credentials["refresh_token"]; ok {
		t.Fatal("a refresh token reached the agent")
	}
	before := getStats(t).IDP.RefreshToken
	ref, err := c.RefreshConnection(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if ref.AccessToken == tok.AccessToken || getStats(t).IDP.RefreshToken != before+1 {
		t.Fatal("RefreshConnection did not refresh at the provider")
	}
	res, err := c.ResolveToken(ctx, ws, tb.Providers[StrategyOAuth2])
	if err != nil || res.ConnectionID != conn || res.AccessToken != ref.AccessToken {
		t.Fatalf("ResolveToken: %v, %v", res, err)
	}
	stat, err := c.GetToken(ctx, tb.Connections[StrategyHMACPayload])
	if err != nil || stat.Strategy.Config["header_name"] != "X-Signature" || stat.Credentials["api_secret"] == "" || stat.ExpiresAt != nil {
		t.Fatalf("static GetToken: %v, %v", stat, err)
	}
	// A static credential cannot be refreshed with the provider: a typed conflict.
	if _, err := c.RefreshConnection(ctx, tb.Connections[StrategyHMACPayload]); !errors.Is(err, ErrConflict) {
		t.Fatalf("RefreshConnection of a static credential: %v", err)
	}
}

func TestBrokerErrorsAreTyped(t *testing.T) {
	tb := testbed(t)
	c := agentClient(t)
	ctx := ctxT(t)

	_, err := c.GetToken(ctx, "00000000-0000-4000-8000-000000000000")
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrNotFound) || e.Status != 404 || e.Code != "connection_not_found" || e.RequestID == "" {
		t.Fatalf("unknown connection: %#v", err)
	}
	if !strings.Contains(err.Error(), e.RequestID) || !strings.Contains(err.Error(), "connection_not_found") {
		t.Fatalf("message %q lacks the code or request id", err)
	}
	if _, err := c.GetToken(ctx, "not-a-uuid"); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("bad id: %v", err)
	}

	// Wrong agent secret: the login fails with 401 and the secret is not in the message.
	bad, _ := New(WithBaseURL(tb.BrokerURL), WithClientCredentials(tb.Agent.ClientID, "wrong-secret-value-123"), withGetenv(noEnv))
	err = bad.Login(ctx)
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &e) || e.Code == "" {
		t.Fatalf("bad login: %v", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-value-123") {
		t.Fatal("the client secret is in the error message")
	}
	// Wrong API key.
	badKey, _ := New(WithBaseURL(tb.BrokerURL), WithAPIKey("nxa_wrong_key_456"), withGetenv(noEnv))
	_, err = badKey.CheckConnection(ctx, tb.Connections[StrategyHeader])
	if !errors.Is(err, ErrUnauthorized) || strings.Contains(err.Error(), "nxa_wrong_key_456") {
		t.Fatalf("bad key: %v", err)
	}
}

// An agent whose access token the broker no longer accepts logs in again by itself.
func TestAgentLogsInAgainBeforeExpiry(t *testing.T) {
	tb := testbed(t)
	clock := &fakeClock{}
	c := agentClient(t, WithClock(clock))
	ctx := ctxT(t)
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	first, _ := c.agent.token(ctx, false)
	clock.Set(time.Now().Add(24 * time.Hour)) // long past the token's expiry
	if _, err := c.CheckConnection(ctx, tb.Connections[StrategyHeader]); err != nil {
		t.Fatal(err)
	}
	second, _ := c.agent.token(ctx, false)
	if first == second {
		t.Fatal("the agent did not log in again after its token expired")
	}
	// A token the broker refuses (401) triggers one new login, then the call succeeds.
	c.agent.cache.mu.Lock()
	c.agent.cache.val.accessToken = "not-a-valid-token"
	c.agent.cache.mu.Unlock()
	if _, err := c.CheckConnection(ctx, tb.Connections[StrategyHeader]); err != nil {
		t.Fatalf("after a refused token: %v", err)
	}
}

func TestAgentSessions(t *testing.T) {
	tb := testbed(t)
	c := agentClient(t)
	ctx := ctxT(t)

	s, err := c.RequestAgentSession(ctx, AgentSessionRequest{Scopes: []string{"tb:read"}, TTLSeconds: 300})
	if err != nil {
		t.Fatal(err)
	}
	if s.SessionID == "" || s.Status != "active" || s.AgentID != tb.Agent.AgentID || !reflect.DeepEqual(s.ScopesGranted, []string{"tb:read"}) {
		t.Fatalf("RequestAgentSession: %v", s)
	}
	if strings.Contains(s.String(), s.SessionToken) && s.SessionToken != "" {
		t.Fatal("the session token is printed")
	}
	got, err := c.GetAgentSession(ctx, s.SessionID)
	if err != nil || got.SessionID != s.SessionID || got.Status != "active" {
		t.Fatalf("GetAgentSession: %v, %v", got, err)
	}
	closed, err := c.CloseAgentSession(ctx, s.SessionID)
	if err != nil || closed.Status != "closed" {
		t.Fatalf("CloseAgentSession: %v, %v", closed, err)
	}
	if _, err := c.RequestAgentSession(ctx, AgentSessionRequest{Scopes: []string{"not:allowed"}}); err == nil {
		t.Fatal("a scope outside allowed_scopes was granted")
	}
	if _, err := c.GetAgentSession(ctx, "00000000-0000-4000-8000-000000000000"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown session: %v", err)
	}

	// On behalf of a user: a user token from the trusted provider.
	var ut struct {
		Token string `json:"token"`
	}
	control(t, http.MethodPost, "/user-token", map[string]string{"account_id": tb.WorkspaceID}, &ut)
	obo, err := c.RequestOBOSession(ctx, OBOSessionRequest{UserToken: ut.Token, Scopes: []string{"tb:read", "secrets:read"}, TTLSeconds: 120})
	if err != nil {
		t.Fatal(err)
	}
	if !obo.OBO || obo.ActingFor == nil || *obo.ActingFor != tb.WorkspaceID || obo.SessionToken == "" {
		t.Fatalf("RequestOBOSession: %v acting_for=%v", obo, obo.ActingFor)
	}
	// Acting for the user (with secrets:read), the agent reads the user's secrets with the session token.
	sec, err := c.GetSecret(ctx, "db-password", WithSession(obo.SessionToken))
	if err != nil || sec.Value != tb.UserSecrets["db-password"] {
		t.Fatalf("GetSecret on behalf of the user: %v, %v", sec, err)
	}
	out, unresolved, err := c.ResolveSecretsOnBroker(ctx, map[string]any{"db": map[string]any{"pw": "nexus-secret:db-password"}}, WithSession(obo.SessionToken))
	if err != nil || len(unresolved) != 0 {
		t.Fatalf("ResolveSecretsOnBroker: %v, %v", unresolved, err)
	}
	if out.(map[string]any)["db"].(map[string]any)["pw"] != tb.UserSecrets["db-password"] {
		t.Fatal("ResolveSecretsOnBroker did not replace the reference")
	}
	if _, err := c.CloseAgentSession(ctx, obo.SessionID); err != nil {
		t.Fatal(err)
	}
	// Closed: the session token no longer reads the user's secrets.
	if _, err := c.GetSecret(ctx, "db-password", WithSession(obo.SessionToken)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after close: %v", err)
	}
}

func TestSecretsAndResolver(t *testing.T) {
	tb := testbed(t)
	c := agentClient(t)
	ctx := ctxT(t)
	want := tb.UserSecrets["db-password"]

	sec, err := c.GetSecret(ctx, "db-password", ForUser(tb.WorkspaceID))
	if err != nil || sec.Value != want || sec.Version < 1 {
		t.Fatalf("GetSecret: %v, %v", sec, err)
	}
	if strings.Contains(sprintAll(sec), want) {
		t.Fatal("printing a Secret shows its value")
	}

	config := map[string]any{
		"name": "svc",
		"port": 5432,
		"db": map[string]any{
			"password": "nexus-secret:db-password",
			"replicas": []any{
				map[string]any{"host": "a", "password": "nexus-secret:db-password"},
				"nexus-secret:db-password",
				"not nexus-secret:db-password", // not a whole-string reference
			},
			"tags": []string{"x", "nexus-secret:db-password"},
			"env":  map[string]string{"PGPASSWORD": "nexus-secret:db-password"},
		},
		"enabled": true,
		"nothing": nil,
	}
	got, err := c.ResolveSecrets(ctx, config, ForUser(tb.WorkspaceID))
	if err != nil {
		t.Fatal(err)
	}
	db := got["db"].(map[string]any)
	replicas := db["replicas"].([]any)
	if db["password"] != want || replicas[0].(map[string]any)["password"] != want || replicas[1] != want ||
		replicas[2] != "not nexus-secret:db-password" || db["tags"].([]string)[1] != want ||
		db["env"].(map[string]string)["PGPASSWORD"] != want || got["port"] != 5432 || got["enabled"] != true || got["name"] != "svc" {
		t.Fatalf("resolved config: %v", got)
	}
	if config["db"].(map[string]any)["password"] != "nexus-secret:db-password" {
		t.Fatal("the input config was modified")
	}

	// A reference the agent cannot read is unresolved: an error listing it, or kept.
	config["extra"] = []any{"nexus-secret:missing-one"}
	_, err = c.ResolveSecrets(ctx, config, ForUser(tb.WorkspaceID))
	var e *Error
	if !errors.Is(err, ErrUnresolvedSecrets) || !errors.As(err, &e) || len(e.Unresolved) != 1 || e.Unresolved[0].Name != "missing-one" {
		t.Fatalf("unresolved: %v", err)
	}
	if strings.Contains(err.Error(), want) {
		t.Fatal("a secret value is in the error message")
	}
	kept, err := c.ResolveSecrets(ctx, config, ForUser(tb.WorkspaceID), LeaveUnresolved())
	if err != nil || kept["extra"].([]any)[0] != "nexus-secret:missing-one" || kept["db"].(map[string]any)["password"] != want {
		t.Fatalf("LeaveUnresolved: %v, %v", kept, err)
	}

	// With an admin key, the broker's one-round-trip resolver and secret writes.
	a := adminClient(t).Client()
	user := "go-secrets-user"
	if _, err := a.PutSecret(ctx, "api-token", "tok-123456", "test", ForUser(user)); err != nil {
		t.Fatal(err)
	}
	list, err := a.ListSecrets(ctx, ForUser(user))
	if err != nil || len(list) != 1 || list[0].Name != "api-token" {
		t.Fatalf("ListSecrets: %v, %v", list, err)
	}
	out, _, err := a.ResolveSecretsOnBroker(ctx, map[string]any{"k": []any{"nexus-secret:api-token"}}, ForUser(user))
	if err != nil || out.(map[string]any)["k"].([]any)[0] != "tok-123456" {
		t.Fatalf("ResolveSecretsOnBroker: %v, %v", out, err)
	}
	_, _, err = a.ResolveSecretsOnBroker(ctx, map[string]any{"k": "nexus-secret:nope"}, ForUser(user))
	if !errors.Is(err, ErrUnresolvedSecrets) || !errors.As(err, &e) || len(e.Unresolved) != 1 || e.Unresolved[0].Name != "nope" {
		t.Fatalf("broker unresolved: %v", err)
	}
}
