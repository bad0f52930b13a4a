package nexus

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors. An [*Error] matches the ones that describe it with [errors.Is]:
//
//	if errors.Is(err, nexus.ErrAttentionRequired) { /* ask the user to reconnect */ }
var (
	ErrBadRequest        = errors.New("nexus: bad request")           // 400
	ErrUnauthorized      = errors.New("nexus: unauthorized")          // 401: bad API key or agent credentials
	ErrForbidden         = errors.New("nexus: forbidden")             // 403
	ErrNotFound          = errors.New("nexus: not found")             // 404
	ErrConflict          = errors.New("nexus: conflict")              // 409 (any code)
	ErrRateLimited       = errors.New("nexus: rate limited")          // 429
	ErrServer            = errors.New("nexus: server error")          // any 5xx
	ErrUnavailable       = errors.New("nexus: broker unavailable")    // 502, 503, 504, or the broker could not be reached
	ErrAttentionRequired = errors.New("nexus: attention required")    // 409 attention_required: the user must reconnect
	ErrNotActive         = errors.New("nexus: connection not active") // 409 connection_not_active, or WaitForActive saw a final state
	ErrUnresolvedSecrets = errors.New("nexus: unresolved secrets")    // nexus-secret references that could not be resolved
	ErrStrategy          = errors.New("nexus: strategy not applicable")
)

// Codes the broker sends (the "error" field of its error body) that the SDK gives a meaning to.
const (
	CodeAttentionRequired   = "attention_required"
	CodeConnectionNotActive = "connection_not_active"
	CodeRefreshNotSupported = "refresh_not_supported"
	CodeUnresolvedSecrets   = "unresolved_secrets"
	// CodeUnreachable is set by the SDK (never by the broker) when no answer came back.
	CodeUnreachable = "unreachable"
)

// Error is a failed call to the broker: an error answer, or no answer at all (Status 0,
// Code [CodeUnreachable], the transport error in Err).
//
// It never contains a credential: the broker's messages are caller-safe and the SDK
// puts no token, secret or API key into them.
type Error struct {
	// Op is the call, such as "GET /v1/token/{id}".
	Op string
	// Status is the HTTP status (0 when the broker could not be reached).
	Status int
	// Code is the broker's stable error code ("connection_not_found", "attention_required", ...).
	Code string
	// Message is the broker's caller-safe message.
	Message string
	// RequestID is the broker's request id (the x-request-id header or request_id field):
	// quote it when asking an operator to look at the broker logs.
	RequestID string
	// Details is the broker's optional details object, undecoded.
	Details json.RawMessage
	// ConnectionID is set for connection errors (attention_required, connection_not_active).
	ConnectionID string
	// Unresolved lists the secret references that could not be resolved (Code unresolved_secrets).
	Unresolved []UnresolvedSecret
	// RetryAfter is the delay the broker asked for (429/503 Retry-After), zero if none.
	RetryAfter time.Duration
	// Attempts is how many times the call was tried.
	Attempts int
	// Err is the underlying transport error when Status is 0.
	Err error
}

// UnresolvedSecret is a nexus-secret:NAME reference that could not be replaced.
type UnresolvedSecret struct {
	Name   string `json:"name"`
	Reason string `json:"reason"` // not_found | disabled
}

func (e *Error) Error() string {
	var msg string
	switch {
	case e.Code == CodeAttentionRequired:
		id := e.ConnectionID
		if id == "" {
			id = "(unknown)"
		}
		msg = fmt.Sprintf("nexus: connection %s needs attention: the user must reconnect this account "+
			"(start a new connection with RequestConnection)", id)
	case e.Status == 0:
		msg = "nexus: broker unreachable"
		if e.Err != nil {
			msg += ": " + e.Err.Error()
		}
	default:
		msg = fmt.Sprintf("nexus: %d %s", e.Status, e.Code)
		if e.Message != "" {
			msg += ": " + e.Message
		}
		msg += detailPaths(e.Details)
	}
	if e.Op != "" {
		msg += " [" + e.Op
		if e.Attempts > 1 {
			msg += fmt.Sprintf(", %d attempts", e.Attempts)
		}
		msg += "]"
	}
	if e.RequestID != "" {
		msg += " (request id " + e.RequestID + ")"
	}
	return msg
}

// Unwrap returns the transport error, if any.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether the error is described by one of the sentinel errors.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.Status == http.StatusBadRequest
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	case ErrServer:
		return e.Status >= 500
	case ErrUnavailable:
		return e.Status == 0 || e.Status == http.StatusBadGateway ||
			e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout
	case ErrAttentionRequired:
		return e.Code == CodeAttentionRequired
	case ErrNotActive:
		return e.Code == CodeConnectionNotActive
	case ErrUnresolvedSecrets:
		return e.Code == CodeUnresolvedSecrets
	}
	return false
}

// Temporary reports whether retrying the call later may succeed.
func (e *Error) Temporary() bool {
	return e.Is(ErrUnavailable) || e.Status == http.StatusTooManyRequests
}

// detailPaths summarises validation details ([{path, message}], as the broker sends for
// invalid requests): where and what, never a submitted value.
func detailPaths(details json.RawMessage) string {
	var items []struct {
		Path    string `json:"path"`
		Message string `json:"message"`
	}
	if len(details) == 0 || json.Unmarshal(details, &items) != nil || len(items) == 0 {
		return ""
	}
	var parts []string
	for i, it := range items {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(items)-3))
			break
		}
		parts = append(parts, it.Path+": "+it.Message)
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// errorBody is the broker's error envelope.
type errorBody struct {
	Error     string          `json:"error"`
	Message   string          `json:"message"`
	Details   json.RawMessage `json:"details,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
}

// parseError builds an *Error from a non-2xx answer.
func parseError(op string, status int, header http.Header, body []byte) *Error {
	e := &Error{Op: op, Status: status, RequestID: header.Get("X-Request-Id")}
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
		e.Code = eb.Error
		e.Message = eb.Message
		e.Details = eb.Details
		if e.RequestID == "" {
			e.RequestID = eb.RequestID
		}
	} else {
		// Not the broker's envelope (a proxy in front of it, say): keep the status, never the body.
		e.Code = http.StatusText(status)
		if e.Code == "" {
			e.Code = "http_error"
		}
	}
	if len(e.Details) > 0 {
		var d struct {
			ConnectionID string             `json:"connection_id"`
			Unresolved   []UnresolvedSecret `json:"unresolved"`
		}
		if json.Unmarshal(e.Details, &d) == nil {
			e.ConnectionID = d.ConnectionID
			e.Unresolved = d.Unresolved
		}
	}
	e.RetryAfter = parseRetryAfter(header.Get("Retry-After"), time.Now())
	return e
}

// maxDuration is the longest time.Duration.
const maxDuration = time.Duration(1<<63 - 1)

// parseRetryAfter reads RFC 9110 §10.2.3 Retry-After: delay-seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		// delay-seconds of any size: beyond what a Duration holds it saturates (and so
		// is above any MaxRetryAfter, which ends the retries).
		switch {
		case secs <= 0:
			return 0
		case secs > int64(maxDuration/time.Second):
			return maxDuration
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
