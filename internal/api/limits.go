package api

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/stats"
)

// Limits of one request (docs/api.md, "Limits"). Every request does
// bounded work: a window is clamped to the stored history and then may
// cover at most stats.MaxWindowDays days; a series at most
// stats.MaxSeriesPoints points; an events page at most MaxLimit rows, and
// its scan reads at most Options.MaxScanRows aggregate rows, whatever the
// filters keep.
const (
	// MaxLimit is the largest events page.
	MaxLimit = 10000
	// DefaultMaxScanRows is Options.MaxScanRows' default: rows one events
	// request reads from the store at most.
	DefaultMaxScanRows = 100000
)

// workMetrics count what requests cost, by route: a test asserts on
// them, not on time.
type workMetrics struct {
	rows   *prometheus.CounterVec // aggregate rows read from the store
	pieces *prometheus.CounterVec // day pieces of statistics combined
	raw    *prometheus.CounterVec // raw events read for days cut by a window
}

func newWorkMetrics(reg prometheus.Registerer) *workMetrics {
	m := &workMetrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "takedown_api_rows_scanned_total",
			Help: "Aggregate (day, address, family) rows read from the store to answer API requests, by route."}, []string{"route"}),
		pieces: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "takedown_api_stats_days_total",
			Help: "Day pieces (whole, cut or cached days) combined to answer statistics requests, by route."}, []string{"route"}),
		raw: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "takedown_api_raw_events_scanned_total",
			Help: "Raw events read for days a statistics window cuts, by route."}, []string{"route"}),
	}
	if reg == nil {
		return m
	}
	// A second API on the same registry (tests) shares the first's
	// counters.
	for _, c := range []**prometheus.CounterVec{&m.rows, &m.pieces, &m.raw} {
		if err := reg.Register(*c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					*c = existing
				}
			}
		}
	}
	return m
}

// statsWork records a statistics request's work.
func (m *workMetrics) statsWork(route string, w stats.Work) {
	m.rows.WithLabelValues(route).Add(float64(w.Rows))
	m.pieces.WithLabelValues(route).Add(float64(w.Pieces))
	m.raw.WithLabelValues(route).Add(float64(w.RawEvents))
}

// tooLarge turns the statistics engine's ErrTooLarge into the catalogue's
// too_large, and anything else into internal.
func tooLarge(err error) *Error {
	if errors.Is(err, stats.ErrTooLarge) {
		return errTooLarge.withf("%v", err)
	}
	return errInternal.wrap(err)
}

// eventsWindow clamps [from, to) to the days the event store holds and
// refuses a window that still covers more than stats.MaxWindowDays.
func (a *API) eventsWindow(ctx context.Context, from, to time.Time) (time.Time, time.Time, error) {
	h, err := stats.HistoryOf(ctx, a.opt.Events, a.opt.Now())
	if err != nil {
		return time.Time{}, time.Time{}, errInternal.wrap(err)
	}
	if err := stats.CheckWindow(h, "window", from, to, stats.MaxWindowDays); err != nil {
		return time.Time{}, time.Time{}, errTooLarge.withf("%v", err)
	}
	f, t := h.Clip(from.Unix(), to.Unix())
	if f >= t {
		return from, from, nil // nothing stored in the window
	}
	return time.Unix(max(f, from.Unix()), 0).UTC(), time.Unix(t, 0).UTC(), nil
}
