package nexus

import (
	"errors"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
)

// BridgeMetrics receives the events of maintained connections. transport is "websocket" or
// "grpc". Implementations must be safe for concurrent use.
type BridgeMetrics interface {
	// IncConnections counts a connection established (a WebSocket handshake that succeeded,
	// a gRPC channel that became ready).
	IncConnections(transport string)
	// IncDisconnects counts a connection that ended. reason is one of "dropped" (the network
	// or the server ended it), "unauthorized" (the server refused the credential), "refresh"
	// (closed to reconnect with a refreshed credential), "too_large" (an incoming message
	// above the limit), "permanent" and "closed" (the caller's context ended).
	IncDisconnects(transport, reason string)
	// IncTokenRefreshes counts a refresh of the credential ahead of its expiry or after the
	// server refused it; result is "ok" or "error".
	IncTokenRefreshes(transport, result string)
	// SetConnectionStatus says whether a maintained connection is up.
	SetConnectionStatus(transport, connectionID string, up bool)
}

type nopMetrics struct{}

func (nopMetrics) IncConnections(string)                    {}
func (nopMetrics) IncDisconnects(string, string)            {}
func (nopMetrics) IncTokenRefreshes(string, string)         {}
func (nopMetrics) SetConnectionStatus(string, string, bool) {}

// PrometheusMetrics is a [BridgeMetrics] with Prometheus collectors:
//
//	nexus_bridge_connections_total{transport}
//	nexus_bridge_disconnects_total{transport, reason}
//	nexus_bridge_token_refreshes_total{transport, result}
//	nexus_bridge_connection_status{transport, connection_id}   1 up, 0 down
//
// The status gauge has one series per maintained connection (connection ids are not
// secrets; an agent maintains a bounded number of them).
type PrometheusMetrics struct {
	connections *prometheus.CounterVec
	disconnects *prometheus.CounterVec
	refreshes   *prometheus.CounterVec
	status      *prometheus.GaugeVec
}

// NewPrometheusMetrics registers the collectors on reg (prometheus.DefaultRegisterer when
// nil), each with constLabels (an agent's name, say). Collectors already registered with
// the same labels are shared, so two bridges of one process count together.
func NewPrometheusMetrics(reg prometheus.Registerer, constLabels map[string]string) (*PrometheusMetrics, error) {
	if reg == nil {
		reg = prometheus.DefaultRegisterer
	}
	m := &PrometheusMetrics{
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_bridge_connections_total", Help: "Connections established by the Nexus bridge.", ConstLabels: constLabels,
		}, []string{"transport"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_bridge_disconnects_total", Help: "Connections of the Nexus bridge that ended, by reason.", ConstLabels: constLabels,
		}, []string{"transport", "reason"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_bridge_token_refreshes_total", Help: "Credential refreshes of the Nexus bridge, by result.", ConstLabels: constLabels,
		}, []string{"transport", "result"}),
		status: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nexus_bridge_connection_status", Help: "1 while a maintained connection is up, else 0.", ConstLabels: constLabels,
		}, []string{"transport", "connection_id"}),
	}
	var err error
	m.connections, err = register(reg, m.connections)
	if err != nil {
		return nil, err
	}
	if m.disconnects, err = register(reg, m.disconnects); err != nil {
		return nil, err
	}
	if m.refreshes, err = register(reg, m.refreshes); err != nil {
		return nil, err
	}
	if m.status, err = register(reg, m.status); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the equal collector registered before.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

func (m *PrometheusMetrics) IncConnections(transport string) {
	m.connections.WithLabelValues(transport).Inc()
}

func (m *PrometheusMetrics) IncDisconnects(transport, reason string) {
	m.disconnects.WithLabelValues(transport, reason).Inc()
}

func (m *PrometheusMetrics) IncTokenRefreshes(transport, result string) {
	m.refreshes.WithLabelValues(transport, result).Inc()
}

func (m *PrometheusMetrics) SetConnectionStatus(transport, connectionID string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.status.WithLabelValues(transport, connectionID).Set(v)
}

// NewStandardBridge is [NewBridge] with production defaults, as the original's NewStandard:
// JSON logs on standard error (log/slog) and [PrometheusMetrics] on the default Prometheus
// registerer, with agentLabels as constant labels. opts come after and may replace them.
func NewStandardBridge(tp TokenProvider, agentLabels map[string]string, opts ...PersistentOption) (*Bridge, error) {
	metrics, err := NewPrometheusMetrics(prometheus.DefaultRegisterer, agentLabels)
	if err != nil {
		return nil, err
	}
	std := []PersistentOption{WithLogger(slog.New(slog.NewJSONHandler(os.Stderr, nil))), WithMetrics(metrics)}
	return NewBridge(tp, append(std, opts...)...), nil
}
