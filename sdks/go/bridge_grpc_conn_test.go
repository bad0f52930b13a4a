package nexus

// MaintainGRPCConnection against the testbed's gRPC server (grpc.health.v1.Health), which
// checks each call's credential (oauth2 through the provider's userinfo endpoint) and ends
// a Watch stream UNAUTHENTICATED when its credential stops passing.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

var plaintext = grpc.WithTransportCredentials(insecure.NewCredentials())

// watch opens a Watch stream for strategy/label and reads it until it ends.
func watch(ctx context.Context, conn *grpc.ClientConn, service string, opened *atomic.Int64) error {
	stream, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		if msg.Status == healthpb.HealthCheckResponse_SERVING && opened != nil {
			opened.Add(1)
		}
	}
}

func TestMaintainGRPCStrategies(t *testing.T) {
	tb := testbed(t)
	c := agentClient(t)
	target := longLivedServers(t).GRPCTarget
	for _, strategy := range []string{StrategyOAuth2, StrategyHeader, StrategyBasicAuth} {
		t.Run(strategy, func(t *testing.T) {
			lbl := label(t)
			runs := 0
			err := NewBridge(c, WithGRPCTransportSecurity(false)).MaintainGRPCConnection(ctxT(t), tb.Connections[strategy], target,
				func(ctx context.Context, conn *grpc.ClientConn) error {
					runs++
					res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: strategy + "/" + lbl})
					if err == nil && res.Status != healthpb.HealthCheckResponse_SERVING {
						t.Errorf("status %v", res.Status)
					}
					return err
				}, plaintext)
			if err != nil || runs != 1 {
				t.Fatalf("MaintainGRPCConnection: %v after %d runs", err, runs)
			}
			if s := llStats(t).GRPC.Labels[lbl]; s.Calls.Accepted != 1 || s.Calls.Rejected != 0 {
				t.Fatalf("server saw %+v", s)
			}
		})
	}

	t.Run("the server checks the credential", func(t *testing.T) {
		conn, err := grpc.NewClient(target, plaintext)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = healthpb.NewHealthClient(conn).Check(ctxT(t), &healthpb.HealthCheckRequest{Service: "oauth2/" + label(t)})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("a call without a credential: %v", err)
		}
	})

	for _, strategy := range []string{StrategyQueryParam, StrategyHMACPayload, StrategyAWSSigV4} {
		t.Run(strategy+" has no gRPC form", func(t *testing.T) {
			err := NewBridge(c, WithGRPCTransportSecurity(false)).MaintainGRPCConnection(ctxT(t), tb.Connections[strategy], target,
				func(context.Context, *grpc.ClientConn) error { t.Error("run was called"); return nil }, plaintext)
			var pe *PermanentError
			if !errors.As(err, &pe) || !errors.Is(err, ErrStrategy) {
				t.Fatalf("%v", err)
			}
		})
	}

	t.Run("transport security is required by default", func(t *testing.T) {
		lbl := label(t)
		err := NewBridge(c).MaintainGRPCConnection(ctxT(t), tb.Connections[StrategyOAuth2], target,
			func(ctx context.Context, conn *grpc.ClientConn) error {
				_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "oauth2/" + lbl})
				return &PermanentError{Reason: "test", Err: err}
			}, plaintext)
		if err == nil || !strings.Contains(err.Error(), "transport") {
			t.Fatalf("a credential went over a plaintext channel: %v", err)
		}
		if s := llStats(t).GRPC.Labels[lbl]; s.Calls.Accepted+s.Calls.Rejected != 0 {
			t.Fatalf("the call reached the server: %+v", s)
		}
	})
}

// A short-lived token is refreshed in the background: unary calls never fail, the channel
// keeps its one TCP connection, and the Watch stream opened with the old token (which the
// server ends at its expiry) is opened again at once, on the same channel, with the new one.
func TestMaintainGRPCRefreshWithoutDisconnect(t *testing.T) {
	id, expires := connectShortLived(t, 12)
	lbl := label(t)
	service := "oauth2/" + lbl
	target := longLivedServers(t).GRPCTarget
	reg := prometheus.NewRegistry()
	metrics, _ := NewPrometheusMetrics(reg, nil)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	var runs, opened, calls, failures atomic.Int64
	var channel atomic.Pointer[grpc.ClientConn]
	b := NewBridge(agentClient(t), WithGRPCTransportSecurity(false), WithRefreshBuffer(3*time.Second), WithMetrics(metrics), WithRetryPolicy(fastPolicy))
	m := maintain(func() error {
		return b.MaintainGRPCConnection(ctx, id, target, func(ctx context.Context, conn *grpc.ClientConn) error {
			runs.Add(1)
			channel.Store(conn)
			return watch(ctx, conn, service, &opened)
		}, plaintext)
	})
	eventually(t, 20*time.Second, "the stream", func() bool { return opened.Load() == 1 })
	// Unary calls on the maintained channel until well after the first token expired.
	for time.Now().Before(expires.Add(2 * time.Second)) {
		_, err := healthpb.NewHealthClient(channel.Load()).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		calls.Add(1)
		if err != nil {
			failures.Add(1)
			t.Errorf("call at %s before expiry: %v", time.Until(expires), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	eventually(t, 10*time.Second, "the stream opened again", func() bool { return opened.Load() == 2 })
	s := llStats(t).GRPC.Labels[lbl]
	if s.Connections != 1 || s.Unauthorized != 1 || s.Watches.Started != 2 || s.Credentials < 2 || s.Calls.Rejected != 0 {
		t.Fatalf("server saw %+v", s)
	}
	if runs.Load() != 2 || failures.Load() != 0 || calls.Load() < 20 {
		t.Fatalf("runs %d, calls %d, failures %d", runs.Load(), calls.Load(), failures.Load())
	}
	if v := metricValue(t, reg, "nexus_bridge_connections_total", map[string]string{"transport": "grpc"}); v != 1 {
		t.Fatalf("connections_total %v", v)
	}
	if v := metricValue(t, reg, "nexus_bridge_disconnects_total", map[string]string{"transport": "grpc"}); v != 0 {
		t.Fatalf("disconnects_total %v", v)
	}
	if v := metricValue(t, reg, "nexus_bridge_token_refreshes_total", map[string]string{"result": "ok"}); v < 1 {
		t.Fatalf("token_refreshes{ok} %v", v)
	}
	cancel()
	if err := m.wait(t, 10*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
}

func TestMaintainGRPCDropReconnect(t *testing.T) {
	tb := testbed(t)
	lbl := label(t)
	service := "header/" + lbl
	target := longLivedServers(t).GRPCTarget
	reg := prometheus.NewRegistry()
	metrics, _ := NewPrometheusMetrics(reg, nil)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	var opened, runs atomic.Int64
	b := NewBridge(agentClient(t), WithGRPCTransportSecurity(false), WithMetrics(metrics), WithRetryPolicy(fastPolicy))
	m := maintain(func() error {
		return b.MaintainGRPCConnection(ctx, tb.Connections[StrategyHeader], target, func(ctx context.Context, conn *grpc.ClientConn) error {
			runs.Add(1)
			return watch(ctx, conn, service, &opened)
		}, plaintext)
	})
	eventually(t, 20*time.Second, "the stream", func() bool { return opened.Load() == 1 })
	var dropped struct{ Dropped int }
	control(t, http.MethodPost, "/grpc/drop", map[string]any{"label": lbl}, &dropped)
	if dropped.Dropped != 1 {
		t.Fatalf("dropped %d", dropped.Dropped)
	}
	eventually(t, 20*time.Second, "the stream opened again", func() bool { return opened.Load() == 2 })
	s := llStats(t).GRPC.Labels[lbl]
	if s.Connections != 2 || s.Watches.Started != 2 || runs.Load() != 2 {
		t.Fatalf("server saw %+v after %d runs", s, runs.Load())
	}
	eventually(t, 5*time.Second, "the metrics", func() bool {
		return metricValue(t, reg, "nexus_bridge_connections_total", map[string]string{"transport": "grpc"}) == 2 &&
			metricValue(t, reg, "nexus_bridge_disconnects_total", map[string]string{"reason": "dropped"}) == 1
	})
	cancel()
	if err := m.wait(t, 10*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
	eventually(t, 5*time.Second, "the stream closed on the server", func() bool {
		return llStats(t).GRPC.Labels[lbl].Watches.Open == 0
	})
}

func TestMaintainGRPCRevoked(t *testing.T) {
	id, _ := connect(t, StrategyOAuth2)
	lbl := label(t)
	target := longLivedServers(t).GRPCTarget
	var opened atomic.Int64
	b := NewBridge(agentClient(t), WithGRPCTransportSecurity(false), WithRetryPolicy(fastPolicy))
	m := maintain(func() error {
		return b.MaintainGRPCConnection(ctxT(t), id, target, func(ctx context.Context, conn *grpc.ClientConn) error {
			return watch(ctx, conn, "oauth2/"+lbl, &opened)
		}, plaintext)
	})
	eventually(t, 20*time.Second, "the stream", func() bool { return opened.Load() == 1 })
	control(t, http.MethodPost, "/idp/revoke", map[string]any{"connection_id": id}, nil)
	err := m.wait(t, 20*time.Second)
	var pe *PermanentError
	if !errors.As(err, &pe) || !errors.Is(err, ErrAttentionRequired) {
		t.Fatalf("after the grant was revoked: %v", err)
	}
	if s := llStats(t).GRPC.Labels[lbl]; s.Unauthorized != 1 || s.Watches.Started != 1 {
		t.Fatalf("server saw %+v", s)
	}
}

func TestMaintainGRPCMessageSizeLimit(t *testing.T) {
	tb := testbed(t)
	lbl := label(t)
	target := longLivedServers(t).GRPCTarget
	b := NewBridge(agentClient(t), WithGRPCTransportSecurity(false), WithMessageSizeLimit(1024))
	var callErr error
	err := b.MaintainGRPCConnection(ctxT(t), tb.Connections[StrategyHeader], target, func(ctx context.Context, conn *grpc.ClientConn) error {
		_, callErr = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "header/" + lbl + strings.Repeat("x", 2048)})
		return nil
	}, plaintext)
	if err != nil || status.Code(callErr) != codes.ResourceExhausted {
		t.Fatalf("a 2 KiB request with a 1 KiB limit: %v, %v", err, callErr)
	}
}
