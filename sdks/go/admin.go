package nexus

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// Admin calls the broker's operator API (providers, connections, agents, audit) with an
// admin API key. It is safe for concurrent use.
type Admin struct {
	t *transport
	c *Client // the agent API with the same key (connection calls)
}

// NewAdmin makes an operator client. The API key comes from [WithAPIKey], then
// NEXUS_API_KEY; without one it fails.
func NewAdmin(opts ...Option) (*Admin, error) {
	s, err := resolveSettings(opts, false)
	if err != nil {
		return nil, err
	}
	t := newTransport(s, apiKeyAuth(s.apiKey))
	return &Admin{t: t, c: &Client{t: t}}, nil
}

// Client returns an agent-API client that uses the admin key (to read tokens, open
// sessions for a named agent, read any user's secrets with ForUser, or build a bridge).
func (a *Admin) Client() *Client { return a.c }

// ProviderProfile is a provider registration (POST /providers). ClientSecret is
// write-only: it is never returned.
type ProviderProfile struct {
	Name             string         `json:"name"`
	AuthType         string         `json:"auth_type,omitempty"`   // oauth2 (default), api_key, basic_auth, header, query_param, hmac_payload, aws_sigv4
	AuthHeader       string         `json:"auth_header,omitempty"` // client_secret_post (default), client_secret_basic, private_key_jwt
	ClientID         string         `json:"client_id,omitempty"`
	ClientSecret     string         `json:"client_secret,omitempty"`
	AuthURL          string         `json:"auth_url,omitempty"`
	TokenURL         string         `json:"token_url,omitempty"`
	Issuer           string         `json:"issuer,omitempty"`
	EnableDiscovery  bool           `json:"enable_discovery,omitempty"`
	Scopes           []string       `json:"scopes,omitempty"`
	Params           map[string]any `json:"params,omitempty"`
	APIBaseURL       string         `json:"api_base_url,omitempty"`
	UserInfoEndpoint string         `json:"user_info_endpoint,omitempty"`
	Description      string         `json:"description,omitempty"`
	Category         string         `json:"category,omitempty"`
}

// String hides the client secret.
func (p ProviderProfile) String() string {
	return "nexus.ProviderProfile{name=" + p.Name + " auth_type=" + p.AuthType + "}"
}

// GoString is String.
func (p ProviderProfile) GoString() string { return p.String() }

// Provider is a stored provider (never its client secret).
type Provider struct {
	ID               string         `json:"id"`
	Name             string         `json:"name"`
	AuthType         string         `json:"auth_type"`
	AuthHeader       string         `json:"auth_header"`
	ClientID         string         `json:"client_id,omitempty"`
	HasClientSecret  bool           `json:"has_client_secret"`
	AuthURL          string         `json:"auth_url,omitempty"`
	TokenURL         string         `json:"token_url,omitempty"`
	Issuer           string         `json:"issuer,omitempty"`
	EnableDiscovery  bool           `json:"enable_discovery"`
	Scopes           []string       `json:"scopes"`
	Params           map[string]any `json:"params"`
	APIBaseURL       string         `json:"api_base_url,omitempty"`
	UserInfoEndpoint string         `json:"user_info_endpoint,omitempty"`
	Description      string         `json:"description,omitempty"`
	Category         string         `json:"category,omitempty"`
	Raw              map[string]any `json:"-"`
}

// ProviderSummary is an entry of ListProviders.
type ProviderSummary struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// CreateProvider registers a provider and returns its id: POST /providers.
func (a *Admin) CreateProvider(ctx context.Context, p ProviderProfile) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	if err := a.t.do(ctx, request{method: http.MethodPost, path: "/providers", op: "POST /providers", json: map[string]any{"profile": p}}, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// ListProviders lists live providers: GET /providers.
func (a *Admin) ListProviders(ctx context.Context) ([]ProviderSummary, error) {
	out := []ProviderSummary{}
	if err := a.t.do(ctx, request{method: http.MethodGet, path: "/providers", op: "GET /providers"}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetProvider returns a provider: GET /providers/{id}.
func (a *Admin) GetProvider(ctx context.Context, id string) (*Provider, error) {
	return a.providerCall(ctx, http.MethodGet, id, "GET /providers/{id}", nil)
}

// ProviderIDByName returns the id of a live provider by name or alias: GET /providers/by-name/{name}.
func (a *Admin) ProviderIDByName(ctx context.Context, name string) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	if err := a.t.do(ctx, request{method: http.MethodGet, path: "/providers/by-name/" + pathEscape(name), op: "GET /providers/by-name/{name}"}, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// UpdateProvider replaces a provider's profile (an empty ClientSecret keeps the stored
// one): PUT /providers/{id}.
func (a *Admin) UpdateProvider(ctx context.Context, id string, p ProviderProfile) (*Provider, error) {
	return a.providerCall(ctx, http.MethodPut, id, "PUT /providers/{id}", map[string]any{"profile": p})
}

// PatchProvider changes some profile fields (a nil value clears an optional field):
// PATCH /providers/{id}.
func (a *Admin) PatchProvider(ctx context.Context, id string, fields map[string]any) (*Provider, error) {
	return a.providerCall(ctx, http.MethodPatch, id, "PATCH /providers/{id}", map[string]any{"profile": fields})
}

func (a *Admin) providerCall(ctx context.Context, method, id, op string, body any) (*Provider, error) {
	var raw json.RawMessage
	if err := a.t.do(ctx, request{method: method, path: "/providers/" + pathEscape(id), op: op, json: body}, &raw); err != nil {
		return nil, err
	}
	var p Provider
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	_ = json.Unmarshal(raw, &p.Raw)
	return &p, nil
}

// DeleteProvider soft-deletes a provider (its connections stop working): DELETE /providers/{id}.
func (a *Admin) DeleteProvider(ctx context.Context, id string) error {
	return a.t.do(ctx, request{method: http.MethodDelete, path: "/providers/" + pathEscape(id), op: "DELETE /providers/{id}"}, nil)
}

// ConsentSpecInput starts a consent flow for a workspace (operator form of RequestConnection).
type ConsentSpecInput struct {
	WorkspaceID string   `json:"workspace_id"`
	ProviderID  string   `json:"provider_id"` // id, name or alias
	Scopes      []string `json:"scopes,omitempty"`
	ReturnURL   string   `json:"return_url"`
}

// StartConsent starts a consent flow: POST /auth/consent-spec.
func (a *Admin) StartConsent(ctx context.Context, in ConsentSpecInput) (*RequestConnectionResponse, error) {
	var out RequestConnectionResponse
	if err := a.t.do(ctx, request{method: http.MethodPost, path: "/auth/consent-spec", op: "POST /auth/consent-spec", json: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ConnectionToken returns a connection's credential: GET /connections/{id}/token.
func (a *Admin) ConnectionToken(ctx context.Context, id string) (*Token, error) {
	return a.c.tokenCall(ctx, http.MethodGet, "/connections/"+pathEscape(id)+"/token", "GET /connections/{id}/token", nil)
}

// RefreshConnection refreshes a connection now: POST /connections/{id}/refresh.
func (a *Admin) RefreshConnection(ctx context.Context, id string) (*Token, error) {
	return a.c.tokenCall(ctx, http.MethodPost, "/connections/"+pathEscape(id)+"/refresh", "POST /connections/{id}/refresh", nil)
}

// ResolveConnection returns the credential of the newest active connection of a
// workspace for a provider: GET /connections/resolve.
func (a *Admin) ResolveConnection(ctx context.Context, workspaceID, providerName string) (*Token, error) {
	return a.c.tokenCall(ctx, http.MethodGet, "/connections/resolve", "GET /connections/resolve",
		url.Values{"workspace_id": {workspaceID}, "provider_name": {providerName}})
}

// RevokeConnection revokes a connection: DELETE /connections/{id}.
func (a *Admin) RevokeConnection(ctx context.Context, id, reason string) (*RevokeResult, error) {
	var q url.Values
	if reason != "" {
		q = url.Values{"reason": {reason}}
	}
	var out RevokeResult
	if err := a.t.do(ctx, request{method: http.MethodDelete, path: "/connections/" + pathEscape(id), op: "DELETE /connections/{id}", query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CheckConnection returns a connection's status.
func (a *Admin) CheckConnection(ctx context.Context, id string) (string, error) {
	return a.c.CheckConnection(ctx, id)
}
