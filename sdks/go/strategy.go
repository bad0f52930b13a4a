package nexus

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// emptySHA256 is the hex SHA-256 of an empty payload (SigV4).
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

var sigv4 = v4.NewSigner()

// sigv4S3 signs the path as sent: S3 escapes it once, every other service twice (AWS SigV4 docs).
var sigv4S3 = v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })

// strategyError is returned when a token cannot be applied (a field missing, a strategy
// unknown); it matches [ErrStrategy] and never contains credential values.
func strategyError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrStrategy}, args...)...)
}

func field(t *Token, name string) (string, error) {
	v, ok := t.Credentials[name]
	if !ok || v == "" {
		if name == "access_token" && t.AccessToken != "" {
			return t.AccessToken, nil
		}
		return "", strategyError("%s credential of connection %s has no %q field", t.Strategy.Type, t.ConnectionID, name)
	}
	return v, nil
}

func conf(t *Token, key, def string) string {
	if v, ok := t.Strategy.Config[key]; ok && v != "" {
		return v
	}
	return def
}

// ApplyStrategy applies a token to an outgoing request, in place, as the v1 contract's
// strategies table says. body must be the exact bytes the request will send (nil or
// empty for none): hmac_payload and aws_sigv4 sign them. signTime is the SigV4 signing
// time (the zero value means now).
func ApplyStrategy(ctx context.Context, t *Token, req *http.Request, body []byte, signTime time.Time) error {
	switch t.Strategy.Type {
	case StrategyOAuth2:
		v, err := field(t, "access_token")
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+v)
	case StrategyHeader:
		v, err := field(t, conf(t, "credential_field", "api_key"))
		if err != nil {
			return err
		}
		req.Header.Set(conf(t, "header_name", "Authorization"), t.Strategy.Config["value_prefix"]+v)
	case StrategyHeaders:
		values, err := headerValues(t)
		if err != nil {
			return err
		}
		for name, v := range values {
			req.Header.Set(name, v)
		}
	case StrategyQueryParam:
		name := conf(t, "param_name", "")
		if name == "" {
			return strategyError("query_param strategy of connection %s has no param_name", t.ConnectionID)
		}
		v, err := field(t, conf(t, "credential_field", "api_key"))
		if err != nil {
			return err
		}
		u := *req.URL
		q := u.Query()
		q.Set(name, v)
		u.RawQuery = q.Encode()
		req.URL = &u
	case StrategyBasicAuth:
		user, err := field(t, conf(t, "username_field", "username"))
		if err != nil {
			return err
		}
		pass, err := field(t, conf(t, "password_field", "password"))
		if err != nil {
			return err
		}
		req.SetBasicAuth(user, pass)
	case StrategyHMACPayload:
		header := conf(t, "header_name", "")
		if header == "" {
			return strategyError("hmac_payload strategy of connection %s has no header_name", t.ConnectionID)
		}
		key, err := field(t, conf(t, "secret_field", "api_secret"))
		if err != nil {
			return err
		}
		var h func() hash.Hash
		switch strings.ToLower(conf(t, "algo", "sha256")) {
		case "sha256":
			h = sha256.New
		case "sha1":
			h = sha1.New
		default:
			return strategyError("hmac_payload algo %q is not sha256 or sha1", conf(t, "algo", ""))
		}
		m := hmac.New(h, []byte(key))
		m.Write(body)
		sum := m.Sum(nil)
		switch strings.ToLower(conf(t, "encoding", "hex")) {
		case "hex":
			req.Header.Set(header, hex.EncodeToString(sum))
		case "base64":
			req.Header.Set(header, base64.StdEncoding.EncodeToString(sum))
		default:
			return strategyError("hmac_payload encoding %q is not hex or base64", conf(t, "encoding", ""))
		}
	case StrategyAWSSigV4:
		service := conf(t, "service", "")
		if service == "" {
			return strategyError("aws_sigv4 strategy of connection %s has no service", t.ConnectionID)
		}
		ak, err := field(t, "access_key")
		if err != nil {
			return err
		}
		sk, err := field(t, "secret_key")
		if err != nil {
			return err
		}
		creds := aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk, SessionToken: t.Credentials["session_token"]}
		payload := emptySHA256
		if len(body) > 0 {
			s := sha256.Sum256(body)
			payload = hex.EncodeToString(s[:])
		}
		if signTime.IsZero() {
			signTime = time.Now()
		}
		// Signing rewrites headers: the caller's request is already a clone.
		req.Header.Del("Authorization")
		signer := sigv4
		if service == "s3" {
			signer = sigv4S3
		}
		if err := signer.SignHTTP(ctx, creds, req, payload, service, conf(t, "region", "us-east-1"), signTime.UTC()); err != nil {
			return strategyError("aws_sigv4 signing failed: %v", err)
		}
	default:
		return strategyError("unknown strategy type %q", t.Strategy.Type)
	}
	return nil
}

// placeholder is a {field} of a headers template: a credential field's name in braces.
var placeholder = regexp.MustCompile(`\{([A-Za-z0-9_.-]{1,64})\}`)

// headerValues is what a headers strategy sets: each header of its config with every {field}
// replaced, once, by that credential field (the text around it kept).
func headerValues(t *Token) (map[string]string, error) {
	if len(t.Strategy.Config) == 0 {
		return nil, strategyError("headers strategy of connection %s names no header", t.ConnectionID)
	}
	out := make(map[string]string, len(t.Strategy.Config))
	var missing error
	for name, template := range t.Strategy.Config {
		out[name] = placeholder.ReplaceAllStringFunc(template, func(m string) string {
			v, err := field(t, m[1:len(m)-1])
			if err != nil && missing == nil {
				missing = err
			}
			return v
		})
	}
	if missing != nil {
		return nil, missing
	}
	return out, nil
}
