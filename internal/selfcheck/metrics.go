package selfcheck

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are aggregate counters only: no label ever holds an address.
type metrics struct {
	checks    prometheus.Counter
	positives *prometheus.CounterVec // by family
	resolvers prometheus.Counter
	refused   *prometheus.CounterVec // by reason
}

// Reasons a request was refused (the refused counter's label).
const (
	reasonRateLimited = "rate_limited"
	reasonAddress     = "bad_address"
	reasonStore       = "store_error"
	reasonProxy       = "proxy_header"
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
			Help: "Self-check requests not answered, by reason (rate_limited, bad_address, store_error, proxy_header).",
		}, []string{"reason"}),
	}
	for _, r := range []string{reasonRateLimited, reasonAddress, reasonStore, reasonProxy} {
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
