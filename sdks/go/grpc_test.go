package nexus

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// startGRPC serves the standard health service behind an interceptor that checks the
// credential in the call's metadata by presenting it to the testbed's upstream verifier
// (for oauth2 that asks the OpenID provider). It returns the address and a counter of
// calls the interceptor let through.
func startGRPC(t *testing.T, strategy, key string) (string, *atomic.Int64) {
	t.Helper()
	tb := testbed(t)
	var passed atomic.Int64
	check := func(ctx context.Context, _ any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		vals := md.Get(key)
		if len(vals) != 1 {
			return nil, status.Error(codes.Unauthenticated, "no credential")
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tb.UpstreamURL+"/"+strategy+"/grpc"+info.FullMethod, nil)
		req.Header.Set(key, vals[0])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, status.Error(codes.Unavailable, err.Error())
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return nil, status.Error(codes.Unauthenticated, "credential refused")
		}
		passed.Add(1)
		return handler(ctx, nil)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return check(ctx, req, info, func(ctx context.Context, _ any) (any, error) { return handler(ctx, req) })
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), &passed
}

func TestPerRPCCredentials(t *testing.T) {
	tb := testbed(t)
	c := agentClient(t)
	ctx := ctxT(t)

	for _, tc := range []struct{ strategy, key string }{
		{StrategyOAuth2, "authorization"},
		{StrategyHeader, "x-api-key"},
		{StrategyBasicAuth, "authorization"},
	} {
		t.Run(tc.strategy, func(t *testing.T) {
			addr, passed := startGRPC(t, tc.strategy, tc.key)
			creds := c.NewPerRPCCredentials(tb.Connections[tc.strategy], WithTransportSecurity(false))
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(creds),
				grpc.WithUnaryInterceptor(creds.UnaryClientInterceptor()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			hc := healthpb.NewHealthClient(conn)
			res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil || res.Status != healthpb.HealthCheckResponse_SERVING || passed.Load() != 1 {
				t.Fatalf("Check: %v, %v (passed %d)", res, err, passed.Load())
			}
			// Without credentials the server refuses: it really checks them.
			bare, _ := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			defer bare.Close()
			if _, err := healthpb.NewHealthClient(bare).Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("without credentials: %v", err)
			}
			// One refusal upstream: the interceptor refreshes and retries once.
			control(t, http.MethodPost, "/upstream/reject-next", map[string]any{"strategy": tc.strategy}, nil)
			if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || passed.Load() != 2 {
				t.Fatalf("after one refusal: %v (passed %d)", err, passed.Load())
			}
		})
	}

	t.Run("transport security is required by default", func(t *testing.T) {
		addr, passed := startGRPC(t, StrategyOAuth2, "authorization")
		creds := c.NewPerRPCCredentials(tb.Connections[StrategyOAuth2])
		if !creds.RequireTransportSecurity() {
			t.Fatal("RequireTransportSecurity is false by default")
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(creds))
		if err == nil {
			defer conn.Close()
			_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		}
		if err == nil || !strings.Contains(err.Error(), "transport") || passed.Load() != 0 {
			t.Fatalf("a credential went over an insecure connection: %v", err)
		}
	})

	t.Run("signing strategies have no gRPC form", func(t *testing.T) {
		creds := c.NewPerRPCCredentials(tb.Connections[StrategyHMACPayload], WithTransportSecurity(false))
		if _, err := creds.GetRequestMetadata(ctx); !errors.Is(err, ErrStrategy) {
			t.Fatalf("hmac over gRPC: %v", err)
		}
	})
}
