package nexus

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"
)

// Connection statuses reported by CheckConnection.
const (
	StatusPending           = "pending"
	StatusActive            = "active"
	StatusAttentionRequired = "attention_required"
	StatusExpired           = "expired"
	StatusRevoked           = "revoked"
	StatusFailed            = "failed"
)

// Strategy types: how a credential is applied to an upstream request.
const (
	StrategyOAuth2      = "oauth2"
	StrategyHeader      = "header"
	StrategyHeaders     = "headers"
	StrategyQueryParam  = "query_param"
	StrategyBasicAuth   = "basic_auth"
	StrategyHMACPayload = "hmac_payload"
	StrategyAWSSigV4    = "aws_sigv4"
)

// RequestConnectionInput is the body of POST /v1/request-connection. Give exactly one of
// ProviderName and ProviderID.
type RequestConnectionInput struct {
	UserID       string   `json:"user_id"`
	ProviderName string   `json:"provider_name,omitempty"`
	ProviderID   string   `json:"provider_id,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
	ReturnURL    string   `json:"return_url"`
	// ConnectionConfig holds values of the provider's per-connection parameters (a Zendesk
	// subdomain, a Microsoft tenant). The broker answers 400 invalid_connection_config to a name
	// the provider does not declare, a missing value or one that does not match its pattern.
	ConnectionConfig map[string]string `json:"connection_config,omitempty"`
	// Verify has the application confirm the user before the connection activates: after the
	// provider's callback the browser goes to the broker's verifier page with a flow_id, and the
	// application's server calls [Client.ConfirmConnection]. Nil: the operator's default. A broker
	// without a verifier answers 400 verifier_not_configured.
	Verify *bool `json:"verify,omitempty"`
}

// ConnectSessionInput asks for a hosted connect page for one user: POST /v1/connect-sessions.
type ConnectSessionInput struct {
	UserID string `json:"user_id"`
	// Providers are the ids, names or aliases to offer (1 to 50); empty: every provider the
	// caller may connect.
	Providers        []string          `json:"providers,omitempty"`
	ReturnURL        string            `json:"return_url"`
	ConnectionConfig map[string]string `json:"connection_config,omitempty"`
	Verify           *bool             `json:"verify,omitempty"`
}

// ConnectSession is a single-use hosted page: open URL in the user's browser before ExpiresAt.
// Token is the capability inside URL (the broker keeps only its hash).
type ConnectSession struct {
	ID        string `json:"id"`
	URL       string `json:"url"`
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	// Providers are what the page offers.
	Providers []ProviderRef `json:"providers"`
}

// ProviderRef names a provider.
type ProviderRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// String shows the session without its URL and token (the capability).
func (s ConnectSession) String() string {
	return fmt.Sprintf("nexus.ConnectSession{id=%s providers=%v expires=%s}", s.ID, s.Providers, s.ExpiresAt)
}

// GoString is String.
func (s ConnectSession) GoString() string { return s.String() }

// LogValue keeps the capability out of slog output.
func (s ConnectSession) LogValue() slog.Value { return slog.StringValue(s.String()) }

// ConfirmedConnection is the outcome of [Client.ConfirmConnection]: send the browser to
// RedirectURL (nil: no longer allowed). Status is "active", or "failed" with Error
// (user_mismatch, connection_not_pending) and ProviderRevoked.
type ConfirmedConnection struct {
	Status          string  `json:"status"`
	ConnectionID    string  `json:"connection_id"`
	Error           string  `json:"error,omitempty"`
	ProviderRevoked *bool   `json:"provider_revoked,omitempty"`
	RedirectURL     *string `json:"redirect_url"`
}

// RequestConnectionResponse tells where to send the user.
type RequestConnectionResponse struct {
	AuthURL      string   `json:"authUrl"`
	State        string   `json:"state"`
	Scopes       []string `json:"scopes"`
	ProviderID   string   `json:"provider_id"`
	ConnectionID string   `json:"connection_id"`
}

// Strategy is how a credential is applied (the v1 contract's strategies table).
type Strategy struct {
	Type   string            `json:"type"`
	Config map[string]string `json:"config"`
}

// Token is a usable credential for a connection and the strategy to apply it with.
// Printing it (fmt, slog) never shows the credential values.
type Token struct {
	ConnectionID string
	ProviderID   string
	ProviderName string
	Strategy     Strategy
	// Credentials are the values the strategy applies (never a refresh token).
	Credentials map[string]string
	// ExpiresAt is when the credential expires; nil when unknown or never.
	ExpiresAt *time.Time
	// AccessToken and TokenType are the OAuth fields flattened at the top level (oauth2 only).
	AccessToken string
	TokenType   string
	// ConnectionConfig holds the values the provider's URL placeholders are filled with for this
	// connection (not secrets); nil when the provider has none.
	ConnectionConfig map[string]string
}

// TokenResponse is the name the original Go SDK used for [Token].
type TokenResponse = Token

type tokenWire struct {
	ConnectionID string            `json:"connection_id"`
	ProviderID   string            `json:"provider_id"`
	ProviderName string            `json:"provider_name"`
	Strategy     Strategy          `json:"strategy"`
	Credentials  map[string]string `json:"credentials"`
	ExpiresAt    *string           `json:"expires_at"`
	AccessToken  string            `json:"access_token"`
	TokenType    string            `json:"token_type"`
	Config       map[string]string `json:"connection_config"`
}

func (w *tokenWire) token() *Token {
	t := &Token{
		ConnectionID: w.ConnectionID, ProviderID: w.ProviderID, ProviderName: w.ProviderName,
		Strategy: w.Strategy, Credentials: w.Credentials, AccessToken: w.AccessToken, TokenType: w.TokenType,
		ConnectionConfig: w.Config,
	}
	if t.Credentials == nil {
		t.Credentials = map[string]string{}
	}
	if t.Strategy.Config == nil {
		t.Strategy.Config = map[string]string{}
	}
	if t.AccessToken == "" && t.Strategy.Type == StrategyOAuth2 {
		t.AccessToken = t.Credentials["access_token"]
	}
	if w.ExpiresAt != nil {
		if at, err := time.Parse(time.RFC3339Nano, *w.ExpiresAt); err == nil {
			t.ExpiresAt = &at
		}
	}
	return t
}

// String shows the token without its credential values.
func (t Token) String() string {
	keys := make([]string, 0, len(t.Credentials))
	for k := range t.Credentials {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	exp := "never"
	if t.ExpiresAt != nil {
		exp = t.ExpiresAt.Format(time.RFC3339)
	}
	return fmt.Sprintf("nexus.Token{connection=%s provider=%s strategy=%s credentials=[%s] expires=%s}",
		t.ConnectionID, t.ProviderName, t.Strategy.Type, strings.Join(keys, ","), exp)
}

// GoString is String, so %#v does not show credential values either.
func (t Token) GoString() string { return t.String() }

// LogValue keeps credential values out of slog output.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.String()) }

// RevokeResult is the answer of RevokeConnection.
type RevokeResult struct {
	ConnectionID    string `json:"connection_id"`
	Status          string `json:"status"`
	RevokedAt       string `json:"revoked_at"`
	AlreadyRevoked  bool   `json:"already_revoked"`
	ProviderRevoked bool   `json:"provider_revoked"`
}

// AgentSessionRequest opens an agent session (POST /v1/agent-sessions).
type AgentSessionRequest struct {
	Scopes       []string `json:"scopes"`
	TTLSeconds   int      `json:"ttl_seconds,omitempty"`
	ConnectionID string   `json:"connection_id,omitempty"`
	// AgentID names the agent to act as; only with an admin key.
	AgentID string `json:"agent_id,omitempty"`
}

// OBOSessionRequest opens an on-behalf-of session (POST /v1/agent-sessions/obo).
type OBOSessionRequest struct {
	// UserToken is the user's token (a JWT) from an issuer the broker trusts.
	UserToken    string   `json:"user_token"`
	Scopes       []string `json:"scopes"`
	TTLSeconds   int      `json:"ttl_seconds,omitempty"`
	ConnectionID string   `json:"connection_id,omitempty"`
	AgentID      string   `json:"agent_id,omitempty"`
}

// AgentSession is a bounded agent session. The token fields are set only when the
// session is opened. Printing it never shows them.
type AgentSession struct {
	SessionID      string   `json:"session_id"`
	AgentID        string   `json:"agent_id"`
	ConnectionID   *string  `json:"connection_id"`
	ScopesGranted  []string `json:"scopes_granted"`
	CustomScopes   []string `json:"custom_scopes"`
	ProviderScopes []string `json:"provider_scopes"`
	Status         string   `json:"status"` // active | closed | expired
	CreatedAt      string   `json:"created_at"`
	ExpiresAt      string   `json:"expires_at"`
	OBO            bool     `json:"obo"`
	ActingFor      *string  `json:"acting_for"`
	TenantID       *string  `json:"tenant_id"`
	ClearanceLevel *string  `json:"clearance_level"`

	// SessionToken is the broker-signed session JWT (custom scopes; the X-Nexus-Session
	// header for user-secret reads on behalf of the user).
	SessionToken         string  `json:"session_token,omitempty"`
	TokenType            string  `json:"token_type,omitempty"`
	Downscoped           *bool   `json:"downscoped,omitempty"`
	AccessToken          string  `json:"access_token,omitempty"`
	AccessTokenType      string  `json:"access_token_type,omitempty"`
	AccessTokenExpiresAt *string `json:"access_token_expires_at,omitempty"`
	AccessTokenScope     string  `json:"access_token_scope,omitempty"`
}

// String shows the session without its tokens.
func (s AgentSession) String() string {
	return fmt.Sprintf("nexus.AgentSession{id=%s agent=%s status=%s scopes=%v obo=%t expires=%s}",
		s.SessionID, s.AgentID, s.Status, s.ScopesGranted, s.OBO, s.ExpiresAt)
}

// GoString is String.
func (s AgentSession) GoString() string { return s.String() }

// LogValue keeps tokens out of slog output.
func (s AgentSession) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Secret is a user secret's value.
type Secret struct {
	Name    string `json:"name"`
	Zone    string `json:"zone"`
	Version int    `json:"version"`
	Value   string `json:"value"`
}

// String shows the secret without its value.
func (s Secret) String() string {
	return fmt.Sprintf("nexus.Secret{name=%s zone=%s version=%d value=[redacted]}", s.Name, s.Zone, s.Version)
}

// GoString is String.
func (s Secret) GoString() string { return s.String() }

// LogValue keeps the value out of slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// SecretMetadata describes a user secret (never its value).
type SecretMetadata struct {
	Name           string `json:"name"`
	Zone           string `json:"zone"`
	Description    string `json:"description"`
	CurrentVersion int    `json:"current_version"`
	Enabled        bool   `json:"enabled"`
	Deleted        bool   `json:"deleted"`
	CreatedAt      string `json:"created_at"`
	UpdatedAt      string `json:"updated_at"`
	Version        int    `json:"version,omitempty"`
}
