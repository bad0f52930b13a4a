package nexus

// One established WebSocket connection of MaintainWebSocket (bridge_ws.go): its reader,
// writer, pings, refresh loop, and what ends it.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

type wsWrite struct {
	data []byte
	done chan error
}

// wsSession runs an established connection: a writer goroutine (messages and pings), a
// reader goroutine (messages, pongs), the credential's refresh loop, and this one, which
// waits for the first thing that ends the connection. It returns the disconnect reason for
// metrics and the error for OnDisconnect and the reconnect loop.
func (b *Bridge) wsSession(ctx context.Context, h *heldCredential, conn *websocket.Conn, tok *Token, handler WebSocketHandler, log *slog.Logger) (string, error) {
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	conn.SetReadLimit(b.maxMessage)
	// With pings on, silence longer than a ping interval plus the write timeout (no pong,
	// no message) means the peer or the path is gone: the read fails and we reconnect.
	alive := func() {
		if b.pingInterval > 0 {
			conn.SetReadDeadline(time.Now().Add(b.pingInterval + b.writeTimeout))
		}
	}
	alive()
	conn.SetPongHandler(func(string) error { alive(); return nil })

	failed := make(chan error, 2) // the reader's error, the writer's
	writes := make(chan wsWrite)
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.wsWriter(sctx, conn, writes, failed)
	}()
	send := func(msg []byte) error {
		if int64(len(msg)) > b.maxMessage {
			return fmt.Errorf("%w: %d bytes, the limit is %d", ErrMessageTooLarge, len(msg), b.maxMessage)
		}
		w := wsWrite{data: msg, done: make(chan error, 1)}
		select {
		case writes <- w:
		case <-sctx.Done():
			return ErrNotConnected
		}
		// The writer took it: it answers once written or failed (the write has a deadline,
		// and closing the connection ends it sooner).
		return <-w.done
	}
	handler.OnConnect(send)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				failed <- err
				return
			}
			alive()
			handler.OnMessage(msg)
		}
	}()
	fresh := make(chan *Token, 1)
	refreshFailed := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := h.refreshLoop(sctx, tok, func(t *Token) {
			select {
			case fresh <- t:
			case <-sctx.Done():
			}
		})
		if sctx.Err() == nil {
			refreshFailed <- err
		}
	}()

	var reason string
	var err error
	for reason == "" {
		select {
		case <-ctx.Done():
			b.closeWS(conn, websocket.CloseNormalClosure, "client closing", failed)
			reason, err = "closed", ctx.Err()
		case rerr := <-failed:
			reason, err = b.classifyWSError(rerr)
		case rerr := <-refreshFailed:
			b.closeWS(conn, websocket.CloseNormalClosure, "credential no longer valid", failed)
			reason, err = "permanent", &PermanentError{Reason: credentialReason(rerr), Err: rerr}
		case t := <-fresh:
			if b.reauth != nil {
				msg, rerr := b.reauth(t)
				if rerr == nil {
					rerr = send(msg)
				}
				if rerr == nil {
					log.Info("re-authenticated in band")
					continue
				}
				log.Warn("in-band re-authentication failed; reconnecting", "error", rerr)
			} else if !b.reconnectOnRefresh {
				continue
			}
			b.closeWS(conn, websocket.CloseNormalClosure, "credential refreshed", failed)
			reason, err = "refresh", errCredentialRefreshed
		}
	}
	cancel()
	conn.Close()
	wg.Wait()
	handler.OnDisconnect(err)
	return reason, err
}

// wsWriter is the connection's only writer of data frames: messages from send, and pings.
func (b *Bridge) wsWriter(ctx context.Context, conn *websocket.Conn, writes <-chan wsWrite, failed chan<- error) {
	var tick <-chan time.Time
	if b.pingInterval > 0 {
		t := time.NewTicker(b.pingInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case w := <-writes:
			typ := websocket.TextMessage
			if !utf8.Valid(w.data) {
				typ = websocket.BinaryMessage
			}
			conn.SetWriteDeadline(time.Now().Add(b.writeTimeout))
			err := conn.WriteMessage(typ, w.data)
			w.done <- err
			if err != nil {
				failed <- fmt.Errorf("nexus: WebSocket write: %w", err)
				return
			}
		case <-tick:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(b.writeTimeout)); err != nil {
				failed <- fmt.Errorf("nexus: WebSocket ping: %w", err)
				return
			}
		}
	}
}

// closeWS starts the closing handshake (RFC 6455 §7.1.2) and waits briefly for the
// server's close frame, which the reader receives, so that both sides see a clean close.
func (b *Bridge) closeWS(conn *websocket.Conn, code int, text string, failed <-chan error) {
	msg := websocket.FormatCloseMessage(code, text)
	if err := conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(b.writeTimeout)); err != nil {
		return
	}
	select {
	case <-failed:
	case <-time.After(min(b.writeTimeout, 2*time.Second)):
	}
}

// classifyWSError turns what ended a connection into a disconnect reason and the error
// the reconnect loop acts on.
func (b *Bridge) classifyWSError(err error) (string, error) {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		switch {
		case b.permanentCodes[ce.Code]:
			return "permanent", &PermanentError{Reason: fmt.Sprintf("close code %d", ce.Code), CloseCode: ce.Code, Err: err}
		case unauthorizedCloseCodes[ce.Code]:
			return "unauthorized", &refusedCredential{closeCode: ce.Code, err: err}
		}
		return "dropped", err
	}
	if errors.Is(err, websocket.ErrReadLimit) {
		return "too_large", fmt.Errorf("%w: an incoming message exceeded %d bytes", ErrMessageTooLarge, b.maxMessage)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "dropped", fmt.Errorf("nexus: no pong nor message within %s: %w", b.pingInterval+b.writeTimeout, err)
	}
	return "dropped", err
}
