package api

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/takedown/takedown/internal/store"
)

// MetricsHandler serves g in the Prometheus text format, for /metrics.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Counters are the running process's live counters that the sinkhole route
// shows, typed. The app fills them from the components' Stats() snapshots
// (the values their metrics export): the route never reads a metric back
// by name, so renaming a metric cannot silently zero a tile.
type Counters struct {
	DNSQueries      uint64  // DNS queries answered or dropped
	Connections     uint64  // connections accepted by the connection sinkhole
	EventsReceived  uint64  // events handed to the queue
	EventsDropped   uint64  // events refused by the full queue
	SocketDrops     uint64  // datagrams the kernel dropped before a sinkhole read them
	RateLimited     uint64  // responses limited by DNS rate limiting
	QueueDepth      int     // events waiting for the store
	BatchSecondsAvg float64 // mean time of one store write
	// The public self-check page's counters (aggregates only: no address).
	SelfChecks, SelfCheckPositive, SelfCheckResolvers, SelfCheckRefused uint64
	// LastReloadOK is whether the last reload succeeded; nil: unknown.
	LastReloadOK *bool
}

// Sinkhole is a snapshot of the sinkhole's counters. Counters are totals
// since the process started: the dashboard turns two snapshots into rates.
type Sinkhole struct {
	At              time.Time `json:"at"`
	DNSQueries      float64   `json:"dns_queries_total"`
	Connections     float64   `json:"connections_total"`
	EventsReceived  float64   `json:"events_received_total"`
	EventsDropped   float64   `json:"events_dropped_total"`
	SocketDrops     float64   `json:"udp_socket_drops_total"`
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

func (a *API) sinkhole(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	s := Sinkhole{At: a.opt.Now().UTC()}
	if a.opt.Counters != nil {
		c := a.opt.Counters()
		s.MetricsAvailable = true
		s.DNSQueries, s.Connections = float64(c.DNSQueries), float64(c.Connections)
		s.EventsReceived, s.EventsDropped = float64(c.EventsReceived), float64(c.EventsDropped)
		s.SocketDrops = float64(c.SocketDrops)
		s.RateLimited, s.QueueDepth, s.BatchSecondsAvg = float64(c.RateLimited), float64(c.QueueDepth), c.BatchSecondsAvg
		s.SelfChecks, s.SelfCheckPositive = float64(c.SelfChecks), float64(c.SelfCheckPositive)
		s.SelfCheckResolvers, s.SelfCheckRefused = float64(c.SelfCheckResolvers), float64(c.SelfCheckRefused)
		s.LastReloadOK = c.LastReloadOK
	}
	if h, err := a.opt.Events.Health(r.Context()); err == nil {
		s.StoredTotal, s.DroppedPersisted, s.Listeners = h.Stored, h.Dropped, h.Listeners
	}
	if s.Listeners == nil {
		s.Listeners = []store.ListenerHealth{}
	}
	return writeJSON(w, s)
}
