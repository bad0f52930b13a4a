package nexus

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls the broker's agent-facing API. It is safe for concurrent use; create one
// and share it.
type Client struct {
	t     *transport
	agent *agentAuth // nil with an API key
}

// New makes a client. Configuration comes from the options, then the environment
// (NEXUS_URL, NEXUS_API_KEY or NEXUS_CLIENT_ID + NEXUS_CLIENT_SECRET), then defaults.
// It fails when no credential is configured, naming both ways to set one.
func New(opts ...Option) (*Client, error) {
	s, err := resolveSettings(opts, true)
	if err != nil {
		return nil, err
	}
	c := &Client{}
	if s.apiKey != "" {
		c.t = newTransport(s, apiKeyAuth(s.apiKey))
	} else {
		c.agent = newAgentAuth(s)
		c.t = newTransport(s, c.agent)
		c.agent.t = c.t
	}
	return c, nil
}

// BaseURL is the broker URL the client talks to.
func (c *Client) BaseURL() string { return c.t.s.baseURL }

// Login logs the agent in now (it otherwise happens on the first call) so bad client
// credentials show at start-up. With an API key it does nothing.
func (c *Client) Login(ctx context.Context) error {
	if c.agent == nil {
		return nil
	}
	_, err := c.agent.token(ctx, false)
	return err
}

func required(op, name, v string) error {
	if strings.TrimSpace(v) == "" {
		return &Error{Op: op, Status: http.StatusBadRequest, Code: "invalid_request", Message: name + " is required"}
	}
	return nil
}

// RequestConnection starts connecting a user's account: POST /v1/request-connection.
// Send the user to AuthURL, then poll with [Client.WaitForActive].
func (c *Client) RequestConnection(ctx context.Context, in RequestConnectionInput) (*RequestConnectionResponse, error) {
	const op = "POST /v1/request-connection"
	if err := required(op, "UserID", in.UserID); err != nil {
		return nil, err
	}
	var out RequestConnectionResponse
	if err := c.t.do(ctx, request{method: http.MethodPost, path: "/v1/request-connection", op: op, json: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateConnectSession makes a hosted connect page for one user: POST /v1/connect-sessions. The
// user picks a provider among those offered, consents or types the credentials, and returns to
// ReturnURL with status=success&connection_id=… or status=failed&error=<code>.
func (c *Client) CreateConnectSession(ctx context.Context, in ConnectSessionInput) (*ConnectSession, error) {
	const op = "POST /v1/connect-sessions"
	if err := required(op, "UserID", in.UserID); err != nil {
		return nil, err
	}
	var out ConnectSession
	if err := c.t.do(ctx, request{method: http.MethodPost, path: "/v1/connect-sessions", op: op, json: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ConfirmConnection is called from the application's verifier page, for a connection requested
// with Verify: userID (signed in to the application) is the user the connection was asked for.
// The same user: it activates; another: it fails with user_mismatch and nothing is kept. Send the
// browser to RedirectURL either way. A flowID works once (409 confirm_flow_used).
func (c *Client) ConfirmConnection(ctx context.Context, flowID, userID string) (*ConfirmedConnection, error) {
	const op = "POST /v1/connect/confirm"
	if err := required(op, "flow id", flowID); err != nil {
		return nil, err
	}
	if err := required(op, "user id", userID); err != nil {
		return nil, err
	}
	body := map[string]string{"flow_id": flowID, "user_id": userID}
	var out ConfirmedConnection
	if err := c.t.do(ctx, request{method: http.MethodPost, path: "/v1/connect/confirm", op: op, json: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CheckConnection returns the stored status of a connection (pending, active,
// attention_required, expired, revoked, failed): GET /v1/check-connection/{id}.
func (c *Client) CheckConnection(ctx context.Context, connectionID string) (string, error) {
	const op = "GET /v1/check-connection/{id}"
	if err := required(op, "connection id", connectionID); err != nil {
		return "", err
	}
	var out struct {
		Status string `json:"status"`
	}
	if err := c.t.do(ctx, request{method: http.MethodGet, path: "/v1/check-connection/" + pathEscape(connectionID), op: op}, &out); err != nil {
		return "", err
	}
	return out.Status, nil
}

// WaitForActive polls CheckConnection every interval (default 1.5s) until the connection
// is active, returning "active". A final other state returns that status and an error
// matching [ErrAttentionRequired] (attention_required) or [ErrNotActive] (failed,
// expired, revoked). Bound the wait with the context.
func (c *Client) WaitForActive(ctx context.Context, connectionID string, interval time.Duration) (string, error) {
	if interval <= 0 {
		interval = 1500 * time.Millisecond
	}
	for {
		status, err := c.CheckConnection(ctx, connectionID)
		if err != nil {
			return "", err
		}
		switch status {
		case StatusActive:
			return status, nil
		case StatusAttentionRequired:
			return status, &Error{Op: "WaitForActive", Status: http.StatusConflict, Code: CodeAttentionRequired, ConnectionID: connectionID}
		case StatusFailed, StatusExpired, StatusRevoked:
			return status, &Error{Op: "WaitForActive", Status: http.StatusConflict, Code: CodeConnectionNotActive,
				Message: "the connection is " + status, ConnectionID: connectionID}
		}
		if err := sleepCtx(ctx, interval); err != nil {
			return "", err
		}
	}
}

func (c *Client) tokenCall(ctx context.Context, method, path, op string, q url.Values) (*Token, error) {
	var w tokenWire
	if err := c.t.do(ctx, request{method: method, path: path, op: op, query: q}, &w); err != nil {
		return nil, withConnection(err, path)
	}
	return w.token(), nil
}

// withConnection fills ConnectionID on connection errors whose details lacked it.
func withConnection(err error, path string) error {
	var e *Error
	if errors.As(err, &e) && e.ConnectionID == "" && (e.Code == CodeAttentionRequired || e.Code == CodeConnectionNotActive) {
		parts := strings.Split(path, "/")
		if len(parts) > 0 {
			if id, uerr := url.PathUnescape(parts[len(parts)-1]); uerr == nil && id != "resolve" {
				e.ConnectionID = id
			}
		}
	}
	return err
}

// GetToken returns a usable credential for the connection and the strategy to apply it
// (GET /v1/token/{id}); the broker refreshes it first if it is about to expire.
// A connection whose grant the provider no longer accepts fails with [ErrAttentionRequired].
func (c *Client) GetToken(ctx context.Context, connectionID string) (*Token, error) {
	const op = "GET /v1/token/{id}"
	if err := required(op, "connection id", connectionID); err != nil {
		return nil, err
	}
	return c.tokenCall(ctx, http.MethodGet, "/v1/token/"+pathEscape(connectionID), op, nil)
}

// RefreshConnection makes the broker refresh the connection's credential with the
// provider now (POST /v1/refresh/{id}) and returns it.
func (c *Client) RefreshConnection(ctx context.Context, connectionID string) (*Token, error) {
	const op = "POST /v1/refresh/{id}"
	if err := required(op, "connection id", connectionID); err != nil {
		return nil, err
	}
	return c.tokenCall(ctx, http.MethodPost, "/v1/refresh/"+pathEscape(connectionID), op, nil)
}

// ResolveToken returns the credential of the newest active connection of a workspace
// for a provider (name, alias or id): GET /v1/resolve.
func (c *Client) ResolveToken(ctx context.Context, workspaceID, providerName string) (*Token, error) {
	const op = "GET /v1/resolve"
	if err := required(op, "workspace id", workspaceID); err != nil {
		return nil, err
	}
	if err := required(op, "provider name", providerName); err != nil {
		return nil, err
	}
	return c.tokenCall(ctx, http.MethodGet, "/v1/resolve", op, url.Values{"workspace_id": {workspaceID}, "provider_name": {providerName}})
}

// RevokeConnection revokes a connection (best-effort RFC 7009 revocation at the provider,
// then locally); revoking twice is not an error: DELETE /v1/connections/{id}.
func (c *Client) RevokeConnection(ctx context.Context, connectionID, reason string) (*RevokeResult, error) {
	const op = "DELETE /v1/connections/{id}"
	if err := required(op, "connection id", connectionID); err != nil {
		return nil, err
	}
	var q url.Values
	if reason != "" {
		q = url.Values{"reason": {reason}}
	}
	var out RevokeResult
	if err := c.t.do(ctx, request{method: http.MethodDelete, path: "/v1/connections/" + pathEscape(connectionID), op: op, query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RequestAgentSession opens a bounded session for the calling agent: POST /v1/agent-sessions.
func (c *Client) RequestAgentSession(ctx context.Context, in AgentSessionRequest) (*AgentSession, error) {
	var out AgentSession
	if err := c.t.do(ctx, request{method: http.MethodPost, path: "/v1/agent-sessions", op: "POST /v1/agent-sessions", json: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RequestOBOSession opens a session acting on behalf of the user whose token is given:
// POST /v1/agent-sessions/obo. Its SessionToken reads that user's secrets ([WithSession]).
func (c *Client) RequestOBOSession(ctx context.Context, in OBOSessionRequest) (*AgentSession, error) {
	const op = "POST /v1/agent-sessions/obo"
	if err := required(op, "UserToken", in.UserToken); err != nil {
		return nil, err
	}
	var out AgentSession
	if err := c.t.do(ctx, request{method: http.MethodPost, path: "/v1/agent-sessions/obo", op: op, json: in}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetAgentSession returns a session of the calling agent: GET /v1/agent-sessions/{id}.
func (c *Client) GetAgentSession(ctx context.Context, sessionID string) (*AgentSession, error) {
	const op = "GET /v1/agent-sessions/{id}"
	if err := required(op, "session id", sessionID); err != nil {
		return nil, err
	}
	var out AgentSession
	if err := c.t.do(ctx, request{method: http.MethodGet, path: "/v1/agent-sessions/" + pathEscape(sessionID), op: op}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CloseAgentSession closes a session (its session token stops working at once):
// DELETE /v1/agent-sessions/{id}.
func (c *Client) CloseAgentSession(ctx context.Context, sessionID string) (*AgentSession, error) {
	const op = "DELETE /v1/agent-sessions/{id}"
	if err := required(op, "session id", sessionID); err != nil {
		return nil, err
	}
	var out AgentSession
	if err := c.t.do(ctx, request{method: http.MethodDelete, path: "/v1/agent-sessions/" + pathEscape(sessionID), op: op}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
