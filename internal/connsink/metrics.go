package connsink

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metrics are one listener's children of the package's metric vectors,
// resolved once so the hot path only does atomic adds.
type metrics struct {
	accepted prometheus.Counter
	active   prometheus.Gauge
	events   prometheus.Counter
	// unverified counts events whose source could not be verified
	// (datagrams no verifies_source rule matched).
	unverified prometheus.Counter
	dropped    prometheus.Counter
	badReq     prometheus.Counter
	tlsFail    prometheus.Counter
	rejected   *prometheus.CounterVec // by listener and reason; rare
	udp        *udpDrops              // shared by the registry's listeners
}

func newMetrics(reg prometheus.Registerer, name string) *metrics {
	accepted := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "takedown_conn_accepted_total", Help: "Connections accepted by the connection sinkhole.",
	}, []string{"listener"})
	active := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "takedown_conn_active_connections", Help: "Connections open now.",
	}, []string{"listener"})
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "takedown_conn_events_total", Help: "Events (requests, connections, datagrams) recorded.",
	}, []string{"listener"})
	unverified := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "takedown_conn_events_unverified_total", Help: "Events whose source address could not be verified (datagrams no verifies_source rule matched): stored, never counted as infected.",
	}, []string{"listener"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "takedown_conn_events_dropped_total", Help: "Events refused by the full hand-off queue.",
	}, []string{"listener"})
	badReq := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "takedown_conn_bad_requests_total", Help: "Malformed, oversized or timed-out HTTP requests.",
	}, []string{"listener"})
	tlsFail := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "takedown_conn_tls_handshake_failures_total", Help: "TLS handshakes that did not complete.",
	}, []string{"listener"})
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "takedown_conn_rejected_total", Help: "Connections closed unserved, by reason (global_cap, source_cap, proxy_header).",
	}, []string{"listener", "reason"})
	udp := newUDPDrops()
	if reg != nil {
		accepted = register(reg, accepted)
		active = register(reg, active)
		events = register(reg, events)
		unverified = register(reg, unverified)
		dropped = register(reg, dropped)
		badReq = register(reg, badReq)
		tlsFail = register(reg, tlsFail)
		rejected = register(reg, rejected)
		udp = register(reg, udp)
	}
	return &metrics{
		accepted:   accepted.WithLabelValues(name),
		active:     active.WithLabelValues(name),
		events:     events.WithLabelValues(name),
		unverified: unverified.WithLabelValues(name),
		dropped:    dropped.WithLabelValues(name),
		badReq:     badReq.WithLabelValues(name),
		tlsFail:    tlsFail.WithLabelValues(name),
		rejected:   rejected,
		udp:        udp,
	}
}

// register registers c, or returns the collector already registered under
// its name, so that several listeners share one vector.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A conflicting collector of another type: keep ours unregistered
		// rather than fail the listener.
	}
	return c
}

// Stats is a snapshot of one listener's counters since it started, typed,
// for readers that are not Prometheus (the dashboard).
type Stats struct {
	Accepted    uint64 // connections (and datagrams' flows) accepted
	Active      int64  // connections open now
	Events      uint64 // events recorded
	Unverified  uint64 // of Events, with a source that could not be verified
	Dropped     uint64 // events refused by the full hand-off queue
	BadRequests uint64 // malformed, oversized or timed-out HTTP requests
	TLSFailures uint64 // TLS handshakes that did not complete
	SocketDrops uint64 // datagrams the kernel dropped before a UDP listener read them
}

// stats reads the listener's own metric children: the very values
// /metrics exports, found by reference, not by name.
func (m *metrics) stats() Stats {
	return Stats{
		Accepted: uint64(valueOf(m.accepted)), Active: int64(valueOf(m.active)), Events: uint64(valueOf(m.events)),
		Unverified: uint64(valueOf(m.unverified)), Dropped: uint64(valueOf(m.dropped)),
		BadRequests: uint64(valueOf(m.badReq)), TLSFailures: uint64(valueOf(m.tlsFail)),
	}
}

// valueOf is the current value of a counter or gauge.
func valueOf(c prometheus.Metric) float64 {
	var d dto.Metric
	if c.Write(&d) != nil {
		return 0
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.GetGauge().GetValue()
}
