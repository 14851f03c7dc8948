package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/takedown/takedown/internal/store"
)

// MetricsHandler serves g in the Prometheus text format, for /metrics.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Sinkhole is a snapshot of the sinkhole's counters, read from the
// metrics gatherer. Counters are totals since the process started: the
// dashboard turns two snapshots into rates.
type Sinkhole struct {
	At              time.Time `json:"at"`
	DNSQueries      float64   `json:"dns_queries_total"`
	Connections     float64   `json:"connections_total"`
	EventsReceived  float64   `json:"events_received_total"`
	EventsDropped   float64   `json:"events_dropped_total"`
	RateLimited     float64   `json:"rate_limited_total"`
	QueueDepth      float64   `json:"queue_depth_events"`
	BatchSecondsAvg float64   `json:"store_batch_seconds_avg"`
	StoredTotal     uint64    `json:"events_stored_total"`
	// DroppedPersisted is the store's dropped counter: since the data dir
	// was created, across restarts.
	DroppedPersisted uint64 `json:"events_dropped_persisted_total"`
	// Listeners are the store's counters per listener, since the data dir
	// was created.
	Listeners    []store.ListenerHealth `json:"listeners"`
	LastReloadOK *bool                  `json:"last_reload_successful,omitempty"`
	// The public self-check page's counters (aggregates only: no address).
	SelfChecks         float64 `json:"selfcheck_checks_total"`
	SelfCheckPositive  float64 `json:"selfcheck_positive_total"`
	SelfCheckResolvers float64 `json:"selfcheck_resolver_only_total"`
	SelfCheckRefused   float64 `json:"selfcheck_refused_total"`
	MetricsAvailable   bool    `json:"metrics_available"`
}

// The metric names the snapshot reads. A metric family counts when its
// name matches; every series of it is summed.
func sinkholeField(s *Sinkhole, name string) *float64 {
	switch {
	case strings.HasPrefix(name, "takedown_dns_") && strings.HasSuffix(name, "queries_total"):
		return &s.DNSQueries
	case name == "takedown_conn_accepted_total":
		return &s.Connections
	case name == "takedown_events_received_total":
		return &s.EventsReceived
	case name == "takedown_events_queue_dropped_total":
		return &s.EventsDropped
	case strings.HasPrefix(name, "takedown_") && (strings.Contains(name, "rate_limited") || strings.Contains(name, "rrl_limited")) && strings.HasSuffix(name, "_total"):
		return &s.RateLimited
	case name == "takedown_events_queue_depth":
		return &s.QueueDepth
	case name == "takedown_selfcheck_checks_total":
		return &s.SelfChecks
	case name == "takedown_selfcheck_positive_total":
		return &s.SelfCheckPositive
	case name == "takedown_selfcheck_resolver_only_total":
		return &s.SelfCheckResolvers
	case name == "takedown_selfcheck_refused_total":
		return &s.SelfCheckRefused
	}
	return nil
}

func sum(mf *dto.MetricFamily) float64 {
	var v float64
	for _, m := range mf.GetMetric() {
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		case m.Untyped != nil:
			v += m.Untyped.GetValue()
		}
	}
	return v
}

func (a *API) sinkhole(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	s := Sinkhole{At: a.opt.Now().UTC()}
	if a.opt.Gatherer != nil {
		mfs, err := a.opt.Gatherer.Gather()
		if err != nil && len(mfs) == 0 {
			return errInternal.wrap(err)
		}
		s.MetricsAvailable = true
		for _, mf := range mfs {
			name := mf.GetName()
			if f := sinkholeField(&s, name); f != nil {
				*f += sum(mf)
				continue
			}
			switch name {
			case "takedown_pipeline_batch_duration_seconds":
				var total float64
				var n uint64
				for _, m := range mf.GetMetric() {
					if h := m.GetHistogram(); h != nil {
						total += h.GetSampleSum()
						n += h.GetSampleCount()
					}
				}
				if n > 0 {
					s.BatchSecondsAvg = total / float64(n)
				}
			case "takedown_config_last_reload_successful":
				ok := sum(mf) > 0
				s.LastReloadOK = &ok
			}
		}
	}
	if h, err := a.opt.Events.Health(r.Context()); err == nil {
		s.StoredTotal, s.DroppedPersisted, s.Listeners = h.Stored, h.Dropped, h.Listeners
	}
	if s.Listeners == nil {
		s.Listeners = []store.ListenerHealth{}
	}
	return writeJSON(w, s)
}
