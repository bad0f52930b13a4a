package nexus

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// AgentInput creates an agent (POST /admin/v1/agents). Nil slices are sent as empty
// lists ([] allows nothing; ["*"] allows any).
type AgentInput struct {
	AgentID           string   `json:"agent_id"`
	Description       string   `json:"description,omitempty"`
	AllowedScopes     []string `json:"allowed_scopes"`
	AllowedProviders  []string `json:"allowed_providers"`
	AllowedWorkspaces []string `json:"allowed_workspaces"`
	AllowedSecrets    []string `json:"allowed_secrets,omitempty"`
	Active            *bool    `json:"active,omitempty"`
	// GenerateSecret issues a client secret (the broker's default is true).
	GenerateSecret *bool `json:"generate_secret,omitempty"`
}

// AgentPatch changes an agent (PATCH /admin/v1/agents/{id}); nil fields are unchanged.
type AgentPatch struct {
	Description       *string  `json:"description,omitempty"`
	AllowedScopes     []string `json:"allowed_scopes,omitempty"`
	AllowedProviders  []string `json:"allowed_providers,omitempty"`
	AllowedWorkspaces []string `json:"allowed_workspaces,omitempty"`
	AllowedSecrets    []string `json:"allowed_secrets,omitempty"`
	Active            *bool    `json:"active,omitempty"`
}

// Agent is a registered agent. ClientSecret is set only when it was just issued.
type Agent struct {
	ID                string        `json:"id"`
	AgentID           string        `json:"agent_id"`
	Description       string        `json:"description"`
	AllowedScopes     []string      `json:"allowed_scopes"`
	AllowedProviders  []string      `json:"allowed_providers"`
	AllowedWorkspaces []string      `json:"allowed_workspaces"`
	AllowedSecrets    []string      `json:"allowed_secrets"`
	Active            bool          `json:"active"`
	JWKSURI           *string       `json:"jwks_uri"`
	HasJWKS           bool          `json:"has_jwks"`
	Secrets           []AgentSecret `json:"secrets"`
	Version           int           `json:"version"`
	CreatedAt         string        `json:"created_at"`
	UpdatedAt         string        `json:"updated_at"`
	ClientSecret      string        `json:"client_secret,omitempty"`
}

// String hides the client secret.
func (a Agent) String() string {
	return "nexus.Agent{agent_id=" + a.AgentID + " active=" + strconv.FormatBool(a.Active) + "}"
}

// GoString is String.
func (a Agent) GoString() string { return a.String() }

// AgentSecret describes one of an agent's client secrets (never its value).
type AgentSecret struct {
	ID        string  `json:"id"`
	CreatedAt string  `json:"created_at"`
	ExpiresAt *string `json:"expires_at"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// CreateAgent registers an agent; the answer carries its client secret once.
func (a *Admin) CreateAgent(ctx context.Context, in AgentInput) (*Agent, error) {
	in.AllowedScopes, in.AllowedProviders, in.AllowedWorkspaces = nonNil(in.AllowedScopes), nonNil(in.AllowedProviders), nonNil(in.AllowedWorkspaces)
	var out Agent
	if err := a.t.do(ctx, request{method: http.MethodPost, path: "/admin/v1/agents", op: "POST /admin/v1/agents", json: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListAgents lists agents: GET /admin/v1/agents.
func (a *Admin) ListAgents(ctx context.Context) ([]Agent, error) {
	var out struct {
		Agents []Agent `json:"agents"`
	}
	if err := a.t.do(ctx, request{method: http.MethodGet, path: "/admin/v1/agents", op: "GET /admin/v1/agents"}, &out); err != nil {
		return nil, err
	}
	return out.Agents, nil
}

// GetAgent returns an agent: GET /admin/v1/agents/{id}.
func (a *Admin) GetAgent(ctx context.Context, id string) (*Agent, error) {
	var out Agent
	if err := a.t.do(ctx, request{method: http.MethodGet, path: "/admin/v1/agents/" + pathEscape(id), op: "GET /admin/v1/agents/{id}"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateAgent changes an agent: PATCH /admin/v1/agents/{id}.
func (a *Admin) UpdateAgent(ctx context.Context, id string, p AgentPatch) (*Agent, error) {
	var out Agent
	if err := a.t.do(ctx, request{method: http.MethodPatch, path: "/admin/v1/agents/" + pathEscape(id), op: "PATCH /admin/v1/agents/{id}", json: p}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteAgent deletes an agent and revokes its secrets: DELETE /admin/v1/agents/{id}.
func (a *Admin) DeleteAgent(ctx context.Context, id string) error {
	return a.t.do(ctx, request{method: http.MethodDelete, path: "/admin/v1/agents/" + pathEscape(id), op: "DELETE /admin/v1/agents/{id}"}, nil)
}

// RotatedSecret is a newly issued agent client secret.
type RotatedSecret struct {
	SecretID         string `json:"secret_id"`
	ClientSecret     string `json:"client_secret"`
	PreviousExpireAt string `json:"previous_expire_at"`
}

// String hides the secret.
func (r RotatedSecret) String() string { return "nexus.RotatedSecret{id=" + r.SecretID + "}" }

// GoString is String.
func (r RotatedSecret) GoString() string { return r.String() }

// RotateAgentSecret issues a new client secret; the current ones keep working for
// overlapSeconds: POST /admin/v1/agents/{id}/secrets.
func (a *Admin) RotateAgentSecret(ctx context.Context, id string, overlapSeconds int) (*RotatedSecret, error) {
	var out RotatedSecret
	if err := a.t.do(ctx, request{method: http.MethodPost, path: "/admin/v1/agents/" + pathEscape(id) + "/secrets", op: "POST /admin/v1/agents/{id}/secrets",
		json: map[string]int{"overlap_seconds": overlapSeconds}}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AuditQuery filters the audit log; zero fields are not sent.
type AuditQuery struct {
	EventType string
	Actor     string
	Resource  string // "provider" or "provider:<id>"
	Since     string // RFC 3339
	Until     string // RFC 3339
	Limit     int
	Cursor    string
}

// AuditEvent is one audit log entry.
type AuditEvent struct {
	Seq          int64          `json:"seq"`
	ID           string         `json:"id"`
	OccurredAt   string         `json:"occurred_at"`
	Actor        string         `json:"actor"`
	EventType    string         `json:"event_type"`
	ResourceType string         `json:"resource_type"`
	ResourceID   *string        `json:"resource_id"`
	Outcome      string         `json:"outcome"`
	IP           *string        `json:"ip"`
	UserAgent    *string        `json:"user_agent"`
	RequestID    *string        `json:"request_id"`
	Details      map[string]any `json:"details"`
}

// AuditPage is a page of audit events, newest first; pass NextCursor to get the next.
type AuditPage struct {
	Events     []AuditEvent `json:"events"`
	NextCursor *string      `json:"next_cursor"`
}

// ListAudit reads the audit log: GET /audit.
func (a *Admin) ListAudit(ctx context.Context, q AuditQuery) (*AuditPage, error) {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("event_type", q.EventType)
	set("actor", q.Actor)
	set("resource", q.Resource)
	set("since", q.Since)
	set("until", q.Until)
	set("cursor", q.Cursor)
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out AuditPage
	if err := a.t.do(ctx, request{method: http.MethodGet, path: "/audit", op: "GET /audit", query: v}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
