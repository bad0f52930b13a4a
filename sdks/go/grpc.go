package nexus

import (
	"context"
	"encoding/base64"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// PerRPCCredentials is a gRPC [credentials.PerRPCCredentials] that puts a connection's
// credential into each call's metadata: oauth2 as "authorization: Bearer …", header as
// the configured header (lower-cased), basic_auth as "authorization: Basic …". The
// strategies that sign an HTTP request (query_param, hmac_payload, aws_sigv4) have no
// gRPC form and fail the call with an error matching [ErrStrategy].
//
// Caching and single-flight refresh work as in [Transport]. RequireTransportSecurity is
// true unless [WithTransportSecurity](false) is given.
type PerRPCCredentials struct {
	src *credentialSource
}

var _ credentials.PerRPCCredentials = (*PerRPCCredentials)(nil)

// NewPerRPCCredentials makes gRPC per-RPC credentials for a connection.
func (c *Client) NewPerRPCCredentials(connectionID string, opts ...BridgeOption) *PerRPCCredentials {
	return &PerRPCCredentials{src: newCredentialSource(c, connectionID, "", "", newBridgeOpts(opts))}
}

// NewWorkspacePerRPCCredentials makes gRPC per-RPC credentials for the newest active
// connection of a workspace for a provider.
func (c *Client) NewWorkspacePerRPCCredentials(workspaceID, providerName string, opts ...BridgeOption) *PerRPCCredentials {
	return &PerRPCCredentials{src: newCredentialSource(c, "", workspaceID, providerName, newBridgeOpts(opts))}
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (p *PerRPCCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	tok, _, err := p.src.current(ctx)
	if err != nil {
		return nil, err
	}
	return metadataFor(tok)
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (p *PerRPCCredentials) RequireTransportSecurity() bool { return p.src.o.requireTLS }

// UnaryClientInterceptor retries a call once, with a refreshed credential, when the
// server answers Unauthenticated. Install it with grpc.WithUnaryInterceptor next to
// grpc.WithPerRPCCredentials(p).
func (p *PerRPCCredentials) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		_, gen, err := p.src.current(ctx)
		if err != nil {
			return err
		}
		err = invoker(ctx, method, req, reply, cc, opts...)
		if status.Code(err) != codes.Unauthenticated {
			return err
		}
		if _, _, rerr := p.src.refused(ctx, gen); rerr != nil {
			return rerr
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

func metadataFor(t *Token) (map[string]string, error) {
	switch t.Strategy.Type {
	case StrategyOAuth2:
		v, err := field(t, "access_token")
		if err != nil {
			return nil, err
		}
		return map[string]string{"authorization": "Bearer " + v}, nil
	case StrategyHeader:
		v, err := field(t, conf(t, "credential_field", "api_key"))
		if err != nil {
			return nil, err
		}
		return map[string]string{strings.ToLower(conf(t, "header_name", "Authorization")): t.Strategy.Config["value_prefix"] + v}, nil
	case StrategyBasicAuth:
		user, err := field(t, conf(t, "username_field", "username"))
		if err != nil {
			return nil, err
		}
		pass, err := field(t, conf(t, "password_field", "password"))
		if err != nil {
			return nil, err
		}
		return map[string]string{"authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}, nil
	case StrategyHeaders:
		values, err := headerValues(t)
		if err != nil {
			return nil, err
		}
		md := make(map[string]string, len(values))
		for name, v := range values {
			md[strings.ToLower(name)] = v
		}
		return md, nil
	}
	return nil, strategyError("the %s strategy cannot be carried in gRPC metadata", t.Strategy.Type)
}
