package nexus

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestAdminProvidersAgentsAuditConnections(t *testing.T) {
	tb := testbed(t)
	a := adminClient(t)
	ctx := ctxT(t)

	list, err := a.ListProviders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, p := range list {
		names = append(names, p.Name)
	}
	for _, n := range tb.Providers {
		if !slices.Contains(names, n) {
			t.Fatalf("ListProviders lacks %s: %v", n, names)
		}
	}
	id, err := a.ProviderIDByName(ctx, tb.Providers[StrategyOAuth2])
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.GetProvider(ctx, id)
	if err != nil || p.Name != tb.Providers[StrategyOAuth2] || !p.HasClientSecret || p.Raw["client_secret"] != nil {
		t.Fatalf("GetProvider: %+v, %v", p, err)
	}

	name := fmt.Sprintf("go-sdk-%d", time.Now().UnixNano())
	newID, err := a.CreateProvider(ctx, ProviderProfile{
		Name: name, AuthType: "header", APIBaseURL: "http://127.0.0.1:1/api",
		Params: map[string]any{"auth_strategy": map[string]any{"type": "header", "config": map[string]string{"header_name": "X-Key"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := a.PatchProvider(ctx, newID, map[string]any{"description": "from the Go SDK"}); err != nil || p.Description != "from the Go SDK" {
		t.Fatalf("PatchProvider: %+v, %v", p, err)
	}
	if p, err := a.GetProvider(ctx, newID); err != nil || p.Description != "from the Go SDK" {
		t.Fatalf("after patch: %+v, %v", p, err)
	}
	if _, err := a.CreateProvider(ctx, ProviderProfile{Name: name, AuthType: "header"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate provider: %v", err)
	}
	if err := a.DeleteProvider(ctx, newID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GetProvider(ctx, newID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted provider: %v", err)
	}

	agents, err := a.ListAgents(ctx)
	if err != nil || !slices.ContainsFunc(agents, func(x Agent) bool { return x.AgentID == tb.Agent.AgentID }) {
		t.Fatalf("ListAgents: %v, %v", agents, err)
	}
	agentID := fmt.Sprintf("go-agent-%d", time.Now().UnixNano())
	ag, err := a.CreateAgent(ctx, AgentInput{AgentID: agentID, AllowedScopes: []string{"tb:read"}, AllowedProviders: []string{tb.Providers[StrategyHeader]}, AllowedWorkspaces: []string{"*"}})
	if err != nil || ag.ClientSecret == "" || !ag.Active {
		t.Fatalf("CreateAgent: %v, %v", ag, err)
	}
	// The new agent can log in and use the provider it is allowed, and not the others.
	c, err := New(WithBaseURL(tb.BrokerURL), WithClientCredentials(agentID, ag.ClientSecret), withGetenv(noEnv))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetToken(ctx, tb.Connections[StrategyHeader]); err != nil {
		t.Fatalf("allowed provider: %v", err)
	}
	if _, err := c.GetToken(ctx, tb.Connections[StrategyBasicAuth]); err == nil {
		t.Fatal("an agent read a connection of a provider it is not allowed")
	}
	desc := "changed"
	if up, err := a.UpdateAgent(ctx, agentID, AgentPatch{Description: &desc}); err != nil || up.Description != desc {
		t.Fatalf("UpdateAgent: %v, %v", up, err)
	}
	rot, err := a.RotateAgentSecret(ctx, agentID, 0)
	if err != nil || rot.ClientSecret == "" || rot.ClientSecret == ag.ClientSecret {
		t.Fatalf("RotateAgentSecret: %v, %v", rot, err)
	}
	if got, err := a.GetAgent(ctx, agentID); err != nil || got.AgentID != agentID {
		t.Fatalf("GetAgent: %v, %v", got, err)
	}
	if err := a.DeleteAgent(ctx, agentID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GetAgent(ctx, agentID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted agent: %v", err)
	}

	page, err := a.ListAudit(ctx, AuditQuery{Limit: 5})
	if err != nil || len(page.Events) == 0 || len(page.Events) > 5 || page.NextCursor == nil {
		t.Fatalf("ListAudit: %+v, %v", page, err)
	}
	next, err := a.ListAudit(ctx, AuditQuery{Limit: 5, Cursor: *page.NextCursor})
	if err != nil || len(next.Events) == 0 || next.Events[0].Seq >= page.Events[len(page.Events)-1].Seq {
		t.Fatalf("ListAudit next page: %+v, %v", next, err)
	}
	created, err := a.ListAudit(ctx, AuditQuery{EventType: "provider.created", Limit: 50})
	if err != nil || len(created.Events) == 0 {
		t.Fatalf("ListAudit by type: %+v, %v", created, err)
	}
	for _, e := range created.Events {
		if e.EventType != "provider.created" {
			t.Fatalf("filter ignored: %s", e.EventType)
		}
	}

	// Connections with the admin key.
	tok, err := a.ConnectionToken(ctx, tb.Connections[StrategyBasicAuth])
	if err != nil || tok.Credentials["username"] == "" {
		t.Fatalf("ConnectionToken: %v, %v", tok, err)
	}
	if r, err := a.ResolveConnection(ctx, tb.WorkspaceID, tb.Providers[StrategyBasicAuth]); err != nil || r.Strategy.Type != StrategyBasicAuth {
		t.Fatalf("ResolveConnection: %v, %v", r, err)
	}
	conn, _ := connect(t, StrategyQueryParam)
	if r, err := a.RevokeConnection(ctx, conn, "admin test"); err != nil || r.Status != StatusRevoked {
		t.Fatalf("RevokeConnection: %v, %v", r, err)
	}
	if s, err := a.CheckConnection(ctx, conn); err != nil || s != StatusRevoked {
		t.Fatalf("CheckConnection: %q, %v", s, err)
	}
	spec, err := a.StartConsent(ctx, ConsentSpecInput{WorkspaceID: "go-admin", ProviderID: tb.Providers[StrategyOAuth2], ReturnURL: "http://localhost:3000/connected"})
	if err != nil || spec.AuthURL == "" {
		t.Fatalf("StartConsent: %v, %v", spec, err)
	}
}
