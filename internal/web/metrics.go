package web

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// loginWindow is how long a client network's failed logins count.
const loginWindow = 15 * time.Minute

// metrics are the login counters: every attempt by outcome, the password
// hashes run (the CPU an unauthenticated caller can make the server
// spend), and the throttle's table.
type metrics struct {
	hashes                              prometheus.Counter
	ok, wrong, throttled, busy, invalid prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, t *throttle, log *slog.Logger) *metrics {
	hashes := prometheus.NewCounter(prometheus.CounterOpts{Name: "takedown_web_login_hashes_total",
		Help: "Password hashes run for dashboard logins."})
	attempts := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "takedown_web_login_attempts_total",
		Help: "Dashboard login attempts by result: ok, wrong (user or password), throttled (the client network's failures are used up), busy (every hash slot taken), invalid (form or CSRF)."},
		[]string{"result"})
	m := &metrics{hashes: hashes, ok: attempts.WithLabelValues("ok"), wrong: attempts.WithLabelValues("wrong"),
		throttled: attempts.WithLabelValues("throttled"), busy: attempts.WithLabelValues("busy"), invalid: attempts.WithLabelValues("invalid")}
	if reg == nil {
		return m
	}
	tracked := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "takedown_web_login_throttle_networks",
		Help: "Client networks (IPv4 addresses, IPv6 /64s) with failed dashboard logins being counted."},
		func() float64 { n, _ := t.size(); return float64(n) })
	evicted := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "takedown_web_login_throttle_evictions_total",
		Help: "Entries of the login throttle dropped to make room (the oldest not locked out first)."},
		func() float64 { _, e := t.size(); return float64(e) })
	for _, c := range []prometheus.Collector{hashes, attempts, tracked, evicted} {
		if err := reg.Register(c); err != nil {
			log.Warn("dashboard login metric not registered", "err", err)
		}
	}
	return m
}
