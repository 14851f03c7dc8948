package selfcheck

import (
	"errors"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are aggregate counters only: no label ever holds an address.
// The totals are kept as atomics too, for Stats; they change only through
// the methods below, which move both.
type metrics struct {
	checks    prometheus.Counter
	positives *prometheus.CounterVec // by family
	resolvers prometheus.Counter
	refused   *prometheus.CounterVec // by reason

	nChecks, nPositives, nResolvers, nRefused atomic.Uint64
}

// Stats is a snapshot of the self-check page's counters since it started,
// typed, for readers that are not Prometheus (the dashboard). Like the
// metrics, it holds no address.
type Stats struct {
	Checks       uint64 // checks answered, seen or not
	Positive     uint64 // families reported seen with a direct connection, over all checks
	ResolverOnly uint64 // checks whose address was seen only as a DNS resolver
	Refused      uint64 // requests not answered, every reason
}

func (m *metrics) stats() Stats {
	return Stats{Checks: m.nChecks.Load(), Positive: m.nPositives.Load(), ResolverOnly: m.nResolvers.Load(), Refused: m.nRefused.Load()}
}

func (m *metrics) check() {
	m.checks.Inc()
	m.nChecks.Add(1)
}

func (m *metrics) positive(family string) {
	m.positives.WithLabelValues(family).Inc()
	m.nPositives.Add(1)
}

func (m *metrics) resolverOnly() {
	m.resolvers.Inc()
	m.nResolvers.Add(1)
}

func (m *metrics) refuse(reason string) {
	m.refused.WithLabelValues(reason).Inc()
	m.nRefused.Add(1)
}

// Reasons a request was refused (the refused counter's label).
const (
	reasonRateLimited = "rate_limited"
	reasonAddress     = "bad_address"
	reasonStore       = "store_error"
	reasonProxy       = "proxy_header"
	reasonBusy        = "busy" // MaxConcurrent lookups already running
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		checks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "takedown_selfcheck_checks_total",
			Help: "Self-checks answered (seen or not).",
		}),
		positives: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "takedown_selfcheck_positive_total",
			Help: "Self-checks whose address was seen with a direct connection, by malware family.",
		}, []string{"family"}),
		resolvers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "takedown_selfcheck_resolver_only_total",
			Help: "Self-checks whose address was seen only as a DNS resolver (not counted as positive).",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "takedown_selfcheck_refused_total",
			Help: "Self-check requests not answered, by reason (rate_limited, busy, bad_address, store_error, proxy_header).",
		}, []string{"reason"}),
	}
	for _, r := range []string{reasonRateLimited, reasonBusy, reasonAddress, reasonStore, reasonProxy} {
		m.refused.WithLabelValues(r)
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.checks, m.positives, m.resolvers, m.refused} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}
