package evidence

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of one log. With a nil Registerer they are kept but not exported.
type metrics struct {
	leaves      prometheus.Counter
	batches     prometheus.Counter
	appendSec   prometheus.Histogram
	checkpoint  prometheus.Gauge
	checkpoints prometheus.Counter
	failures    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		leaves: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "takedown_evidence_leaves_appended_total", Help: "Records appended to the evidence log by this process.",
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "takedown_evidence_append_batches_total", Help: "Append calls (one fsync each).",
		}),
		appendSec: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "takedown_evidence_append_duration_seconds", Help: "Time of one Append, fsync included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12),
		}),
		checkpoint: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "takedown_evidence_checkpoint_size_leaves", Help: "Tree size of the latest signed checkpoint.",
		}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "takedown_evidence_checkpoints_total", Help: "Signed checkpoints written by this process.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "takedown_evidence_failures_total", Help: "Failed evidence operations, by operation (append, checkpoint).",
		}, []string{"op"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.leaves, m.batches, m.appendSec, m.checkpoint, m.checkpoints, m.failures} {
			if err := reg.Register(c); err != nil {
				// A second log in the same registry (tests): keep this one unexported.
				continue
			}
		}
	}
	return m
}
