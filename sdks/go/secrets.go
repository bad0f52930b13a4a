package nexus

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
)

// SecretRefPrefix starts a reference to a user secret in a config value: "nexus-secret:NAME".
const SecretRefPrefix = "nexus-secret:"

// secretRef is the broker's own reference syntax (a whole string, nothing around it).
var secretRef = regexp.MustCompile(`^nexus-secret:([A-Za-z0-9_.-]{1,128})$`)

// SessionHeader carries an on-behalf-of session token on user-secret calls.
const SessionHeader = "X-Nexus-Session"

// SecretOption says whose secrets a user-secret call reaches.
type SecretOption func(*secretOpts)

type secretOpts struct {
	userID          string
	zone            string
	session         string
	version         int
	leaveUnresolved bool
}

// ForUser names the user owning the secrets: required with an admin key; for an agent,
// the user its grant (allowed_secrets) names.
func ForUser(userID string) SecretOption { return func(o *secretOpts) { o.userID = userID } }

// InZone selects the zone (default "default").
func InZone(zone string) SecretOption { return func(o *secretOpts) { o.zone = zone } }

// WithSession reads as the user an on-behalf-of session acts for: pass the session's
// SessionToken (sent in the X-Nexus-Session header).
func WithSession(sessionToken string) SecretOption {
	return func(o *secretOpts) { o.session = sessionToken }
}

// AtVersion reads that version instead of the current one (GetSecret only).
func AtVersion(n int) SecretOption { return func(o *secretOpts) { o.version = n } }

// LeaveUnresolved makes the resolvers keep references they cannot resolve instead of failing.
func LeaveUnresolved() SecretOption { return func(o *secretOpts) { o.leaveUnresolved = true } }

func secretRequest(opts []SecretOption) (secretOpts, url.Values, http.Header) {
	var o secretOpts
	for _, f := range opts {
		f(&o)
	}
	q := url.Values{}
	if o.userID != "" {
		q.Set("user_id", o.userID)
	}
	if o.zone != "" {
		q.Set("zone", o.zone)
	}
	var h http.Header
	if o.session != "" {
		h = http.Header{SessionHeader: {o.session}}
	}
	return o, q, h
}

// GetSecret reads a user secret's value: GET /api/v2/secrets/{name}.
func (c *Client) GetSecret(ctx context.Context, name string, opts ...SecretOption) (*Secret, error) {
	const op = "GET /api/v2/secrets/{name}"
	if err := required(op, "secret name", name); err != nil {
		return nil, err
	}
	o, q, h := secretRequest(opts)
	if o.version > 0 {
		q.Set("version", strconv.Itoa(o.version))
	}
	var out Secret
	err := c.t.do(ctx, request{method: http.MethodGet, path: "/api/v2/secrets/" + pathEscape(name), op: op, query: q, header: h}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// PutSecret creates a user secret or adds a version to it: POST /api/v2/secrets.
func (c *Client) PutSecret(ctx context.Context, name, value, description string, opts ...SecretOption) (*SecretMetadata, error) {
	_, q, h := secretRequest(opts)
	body := map[string]string{"name": name, "value": value}
	if description != "" {
		body["description"] = description
	}
	var out SecretMetadata
	if err := c.t.do(ctx, request{method: http.MethodPost, path: "/api/v2/secrets", op: "POST /api/v2/secrets", query: q, header: h, json: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListSecrets lists the metadata (never values) of a user's secrets in a zone.
func (c *Client) ListSecrets(ctx context.Context, opts ...SecretOption) ([]SecretMetadata, error) {
	_, q, h := secretRequest(opts)
	var out struct {
		Secrets []SecretMetadata `json:"secrets"`
	}
	if err := c.t.do(ctx, request{method: http.MethodGet, path: "/api/v2/secrets", op: "GET /api/v2/secrets", query: q, header: h}, &out); err != nil {
		return nil, err
	}
	return out.Secrets, nil
}

// ResolveSecrets returns a copy of config in which every string that is exactly
// "nexus-secret:NAME" — at any depth of nested map[string]any, []any, map[string]string
// and []string values — is replaced by the current value of the user secret NAME. Each
// name is read once (GetSecret, so an agent's per-name grants are enough). The input is
// never modified. Names that do not exist or are disabled fail the call with an error
// matching [ErrUnresolvedSecrets] whose Unresolved lists them, unless [LeaveUnresolved]
// is given.
func (c *Client) ResolveSecrets(ctx context.Context, config map[string]any, opts ...SecretOption) (map[string]any, error) {
	out, err := c.ResolveSecretsIn(ctx, config, opts...)
	if err != nil {
		return nil, err
	}
	m, _ := out.(map[string]any)
	return m, nil
}

// ResolveSecretsIn is [Client.ResolveSecrets] for any value (a list, a string, a map);
// the result has the same shape and types as the input.
func (c *Client) ResolveSecretsIn(ctx context.Context, value any, opts ...SecretOption) (any, error) {
	o, _, _ := secretRequest(opts)
	readOpts := append(append([]SecretOption{}, opts...), AtVersion(0)) // always the current version
	values := map[string]string{}
	var unresolved []UnresolvedSecret
	for _, name := range SecretReferences(value) {
		s, err := c.GetSecret(ctx, name, readOpts...)
		var e *Error
		switch {
		case err == nil:
			values[name] = s.Value
		case errors.As(err, &e) && e.Status == http.StatusNotFound:
			unresolved = append(unresolved, UnresolvedSecret{Name: name, Reason: "not_found"})
		case errors.As(err, &e) && e.Code == "user_secret_deleted":
			unresolved = append(unresolved, UnresolvedSecret{Name: name, Reason: "not_found"})
		case errors.As(err, &e) && e.Code == "user_secret_disabled":
			unresolved = append(unresolved, UnresolvedSecret{Name: name, Reason: "disabled"})
		default:
			return nil, err
		}
	}
	if len(unresolved) > 0 && !o.leaveUnresolved {
		return nil, unresolvedError("ResolveSecrets", unresolved)
	}
	return ReplaceSecretReferences(value, values), nil
}

func unresolvedError(op string, u []UnresolvedSecret) *Error {
	msg := "some nexus-secret references could not be resolved:"
	for _, x := range u {
		msg += " " + x.Name + " (" + x.Reason + ")"
	}
	return &Error{Op: op, Status: http.StatusUnprocessableEntity, Code: CodeUnresolvedSecrets, Message: msg, Unresolved: u}
}

// ResolveSecretsOnBroker resolves the references on the broker in one round trip
// (POST /api/v2/secrets/resolve). It needs an admin key with [ForUser], or an agent
// acting for the user ([WithSession]); per-name grants are not enough there. The
// value goes through JSON, so numbers come back as float64.
func (c *Client) ResolveSecretsOnBroker(ctx context.Context, value any, opts ...SecretOption) (any, []UnresolvedSecret, error) {
	o, q, h := secretRequest(opts)
	var out struct {
		Config     any                `json:"config"`
		Unresolved []UnresolvedSecret `json:"unresolved"`
	}
	body := map[string]any{"config": value, "leave_unresolved": o.leaveUnresolved}
	if err := c.t.do(ctx, request{method: http.MethodPost, path: "/api/v2/secrets/resolve", op: "POST /api/v2/secrets/resolve", query: q, header: h, json: body, idempotent: true}, &out); err != nil {
		return nil, nil, err
	}
	return out.Config, out.Unresolved, nil
}

// SecretReferences lists, sorted and without repeats, the secret names referenced in a
// config value (see [Client.ResolveSecrets] for the shapes walked).
func SecretReferences(value any) []string {
	seen := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			if m := secretRef.FindStringSubmatch(x); m != nil {
				seen[m[1]] = true
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]string:
			for _, e := range x {
				walk(e)
			}
		case []string:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(value)
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ReplaceSecretReferences returns a copy of value with each "nexus-secret:NAME" string
// whose NAME is in values replaced by it; other references and values are kept as they are.
func ReplaceSecretReferences(value any, values map[string]string) any {
	str := func(s string) string {
		if m := secretRef.FindStringSubmatch(s); m != nil {
			if v, ok := values[m[1]]; ok {
				return v
			}
		}
		return s
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case string:
			return str(x)
		case map[string]any:
			if x == nil {
				return x
			}
			out := make(map[string]any, len(x))
			for k, e := range x {
				out[k] = walk(e)
			}
			return out
		case []any:
			if x == nil {
				return x
			}
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = walk(e)
			}
			return out
		case map[string]string:
			if x == nil {
				return x
			}
			out := make(map[string]string, len(x))
			for k, e := range x {
				out[k] = str(e)
			}
			return out
		case []string:
			if x == nil {
				return x
			}
			out := make([]string, len(x))
			for i, e := range x {
				out[i] = str(e)
			}
			return out
		}
		return v
	}
	return walk(value)
}
