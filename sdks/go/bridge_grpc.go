package nexus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// MaintainGRPCConnection keeps a gRPC channel to target authenticated with the credential
// of a Nexus connection and calls run with it, until run returns nil (it returns nil), ctx
// ends (ctx's error) or a permanent failure (a [*PermanentError]).
//
//   - Every call carries the credential as metadata: oauth2 "authorization: Bearer …",
//     header the configured header, basic_auth "authorization: Basic …". query_param,
//     hmac_payload and aws_sigv4 sign HTTP requests and have no gRPC form ([ErrStrategy]).
//   - Before the credential expires (WithRefreshBuffer) it is refreshed in the background;
//     every call started after that carries the new one. The channel and its HTTP/2
//     connection stay up: nothing is dropped for a refresh. A stream opened before keeps
//     the credential it was opened with (gRPC metadata is sent once per call): when the
//     server ends it UNAUTHENTICATED, run returns and is called again at once, on the same
//     channel, with the refreshed credential. A unary call refused UNAUTHENTICATED is
//     retried once with a refreshed credential.
//   - When run returns another error (the server dropped the connection: UNAVAILABLE), it
//     is called again after an exponential backoff with jitter ([WithRetryPolicy], which
//     also sets the channel's own reconnection backoff); grpc-go reconnects the channel.
//   - Permanent: the broker says the grant needs the user (attention_required), the
//     connection is revoked or unknown, or the strategy has no gRPC form.
//
// opts are added after the bridge's own dial options (per-RPC credentials, keepalive from
// [WithPingInterval] and [WithWriteTimeout], message size limits, backoff): give at least
// the transport credentials. With plaintext ones, pass [WithGRPCTransportSecurity](false).
func (b *Bridge) MaintainGRPCConnection(ctx context.Context, connectionID, target string, run func(ctx context.Context, conn *grpc.ClientConn) error, opts ...grpc.DialOption) error {
	h := b.hold(connectionID, "grpc")
	log := b.log.With("connection_id", connectionID, "transport", "grpc", "target", target)
	perm := func(err error) error {
		err = &PermanentError{ConnectionID: connectionID, Reason: credentialReason(err), Err: err}
		log.Error("stopped: this connection cannot be maintained", "error", err)
		return err
	}
	// The first credential: without one there is nothing to maintain.
	var tok *Token
	for attempt := 0; ; attempt++ {
		var err error
		tok, _, err = h.current(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if permanentCredentialError(err) {
			return perm(err)
		}
		wait := b.policy.Delay(attempt)
		log.Warn("credential unavailable; trying again", "after", wait, "error", err)
		if err := sleepCtx(ctx, wait); err != nil {
			return err
		}
	}
	if _, err := metadataFor(tok); err != nil {
		return perm(err)
	}

	creds := &bridgeRPCCredentials{h: h, requireTLS: b.requireTLS}
	dial := []grpc.DialOption{
		grpc.WithPerRPCCredentials(creds),
		grpc.WithChainUnaryInterceptor(creds.retryUnauthenticated),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: b.policy.MinBackoff, Multiplier: 2, Jitter: 0.2, MaxDelay: b.policy.MaxBackoff},
			MinConnectTimeout: 20 * time.Second,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(int(b.maxMessage)), grpc.MaxCallSendMsgSize(int(b.maxMessage))),
	}
	if b.pingInterval > 0 {
		dial = append(dial, grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: b.pingInterval, Timeout: b.writeTimeout, PermitWithoutStream: true,
		}))
	}
	conn, err := grpc.NewClient(target, append(dial, opts...)...)
	if err != nil {
		err = &PermanentError{ConnectionID: connectionID, Reason: "invalid target or options", Err: err}
		log.Error("stopped: cannot create the channel", "error", err)
		return err
	}
	defer conn.Close()

	rctx, stop := context.WithCancelCause(ctx)
	done := make(chan struct{})
	defer func() { <-done }()
	defer stop(nil) // runs first: the watchers end, then the channel closes
	go func() {
		defer close(done)
		b.watchChannel(rctx, conn, connectionID, log)
	}()
	go func() {
		if err := h.refreshLoop(rctx, tok, func(*Token) {}); rctx.Err() == nil {
			stop(perm(err))
		}
	}()
	conn.Connect()

	attempt := 0
	refusedBefore := false
	reread := false // read the credential from the broker again before the next run
	for {
		start := time.Now()
		read := h.current
		if reread {
			read = h.reread
		}
		cur, gen, cerr := read(rctx)
		var err error
		if cerr != nil {
			err = cerr
		} else {
			err = run(rctx, conn)
		}
		if p := (*PermanentError)(nil); errors.As(context.Cause(rctx), &p) {
			return p
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if p := creds.permanent.Load(); p != nil {
			return perm(*p)
		}
		var pe *PermanentError
		switch {
		case err == nil:
			log.Info("run returned; done")
			return nil
		case errors.As(err, &pe):
			log.Error("stopped: run returned a permanent error", "error", err)
			return err
		case cerr != nil && permanentCredentialError(cerr):
			return perm(cerr)
		case status.Code(err) == codes.Unauthenticated && cerr == nil:
			reread = false // the refresh below reads it
			next, _, rerr := h.refused(rctx, gen)
			if rerr != nil && permanentCredentialError(rerr) {
				return perm(rerr)
			}
			// A refreshed credential is tried at once, unless the one before was refused
			// just as quickly: then with backoff (the broker does not refresh again at once).
			quick := time.Since(start) < b.policy.MinBackoff
			if rerr == nil && !sameCredential(next, cur) && !(refusedBefore && quick) {
				refusedBefore = true
				log.Info("the server refused the credential; running again with a refreshed one", "error", err)
				continue
			}
			refusedBefore = true
		default:
			refusedBefore, reread = false, true
		}
		if time.Since(start) >= b.policy.ResetAfter {
			attempt = 0
		}
		wait := b.policy.Delay(attempt)
		attempt++
		log.Warn("running again", "after", wait, "attempt", attempt, "error", err)
		if err := sleepCtx(rctx, wait); err != nil {
			if p := (*PermanentError)(nil); errors.As(context.Cause(rctx), &p) {
				return p
			}
			return ctx.Err()
		}
	}
}

// watchChannel reports the channel's connectivity to the metrics and logs: a connection
// when it becomes READY, a disconnect when it leaves READY.
func (b *Bridge) watchChannel(ctx context.Context, conn *grpc.ClientConn, connectionID string, log *slog.Logger) {
	up := false
	for {
		s := conn.GetState()
		switch {
		case s == connectivity.Ready && !up:
			up = true
			b.metrics.IncConnections("grpc")
			b.metrics.SetConnectionStatus("grpc", connectionID, true)
			log.Info("connected")
		case s != connectivity.Ready && up:
			up = false
			b.metrics.IncDisconnects("grpc", "dropped")
			b.metrics.SetConnectionStatus("grpc", connectionID, false)
			log.Warn("disconnected", "state", s.String())
		}
		if !conn.WaitForStateChange(ctx, s) {
			if up {
				b.metrics.IncDisconnects("grpc", "closed")
				b.metrics.SetConnectionStatus("grpc", connectionID, false)
			}
			return
		}
	}
}

// bridgeRPCCredentials puts the held credential into each call's metadata.
type bridgeRPCCredentials struct {
	h          *heldCredential
	requireTLS bool
	// permanent is the last permanent credential failure: grpc-go hands calls only a
	// status made of its message, and the loop must still see the typed error.
	permanent atomic.Pointer[error]
}

var _ credentials.PerRPCCredentials = (*bridgeRPCCredentials)(nil)

func (c *bridgeRPCCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	tok, _, err := c.h.current(ctx)
	if err != nil {
		if permanentCredentialError(err) {
			c.permanent.Store(&err)
			return nil, status.Error(codes.Unauthenticated, err.Error())
		}
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	md, err := metadataFor(tok)
	if err != nil {
		c.permanent.Store(&err)
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	return md, nil
}

func (c *bridgeRPCCredentials) RequireTransportSecurity() bool { return c.requireTLS }

// retryUnauthenticated sends a unary call once more, with a refreshed credential, when
// the server answered UNAUTHENTICATED (the credential expired before the refresh ran, say).
func (c *bridgeRPCCredentials) retryUnauthenticated(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	_, gen, err := c.h.current(ctx)
	if err != nil {
		return invoker(ctx, method, req, reply, cc, opts...) // the credentials report it
	}
	err = invoker(ctx, method, req, reply, cc, opts...)
	if status.Code(err) != codes.Unauthenticated || c.permanent.Load() != nil {
		return err
	}
	if _, _, rerr := c.h.refused(ctx, gen); rerr != nil {
		if permanentCredentialError(rerr) {
			c.permanent.Store(&rerr)
		}
		return fmt.Errorf("%w (and refreshing the credential failed: %v)", err, rerr)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}
