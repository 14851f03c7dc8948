package pipeline

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown/takedown/internal/event"
)

// Fresh figures. An event counts in stats, the API, the dashboard and the
// self-check once the aggregates that include it are in the store: for
// SQLite, after the flush of the pending aggregates that follows its batch
// (the store keeps them in memory between flushes, see
// sqlite.EventStore); for PostgreSQL, when its batch commits (aggregates
// are written in the batch's transaction). The writer flushes every
// FlushEvery, under load as when idle, so no event waits more than about
// FlushEvery plus one flush after its batch committed.
//
// takedown_event_visible_seconds measures that wait end to end, per event
// newly stored by a listener: from the event's timestamp (set by the
// listener when it accepted the query, connection or datagram) to the
// commit of the store write that made its aggregates visible. It includes
// the queue, the batch's linger and commit, and the wait for the flush.
// Summary records (a source over its budget) are not observed: their
// timestamp is their first contact's.

// VisibleMetric is the name of the accept-to-visible histogram.
const VisibleMetric = "takedown_event_visible_seconds"

// visibleBuckets span 10 ms to about 33 s, four per factor of ~3: fine
// enough around the 2 s goal, wide enough to show a store that falls
// minutes behind (+Inf).
var visibleBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30}

// maxUnseenRuns bounds the accept times waiting for their flush: runs of
// events accepted in the same millisecond (a few hundred a second at any
// rate). Beyond it (a store that has not flushed for minutes) further
// events join the earliest run, so their wait is over-, never
// under-stated.
const maxUnseenRuns = 1 << 16

// aggregateLag is implemented by stores that can say whether they still
// hold aggregates in memory (not yet visible); a store that does not is
// taken to hold them until the next Flush.
type aggregateLag interface {
	// PendingAggregates returns the number of aggregate keys not yet
	// written.
	PendingAggregates() int
}

// unseenRun is a run of stored events accepted in the same millisecond
// (Unix milliseconds) whose aggregates are not visible yet.
type unseenRun struct {
	ms int64
	n  uint64
}

// visibility tracks the accept times of stored events until their
// aggregates are visible. It is owned by the writer goroutine.
type visibility struct {
	hist   prometheus.Histogram
	unseen []unseenRun
	count  uint64 // events in unseen
	oldest int    // index of the earliest run in unseen
}

func newVisibility() *visibility {
	return &visibility{hist: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    VisibleMetric,
		Help:    "Seconds from a listener accepting an event to the commit of the store write that makes it count in stats, the API, the dashboard and the self-check.",
		Buckets: visibleBuckets,
	})}
}

// stored records the events of a committed batch that fresh marks as newly
// stored.
func (v *visibility) stored(events []event.Event, fresh []bool) {
	for i := range events {
		if i >= len(fresh) || !fresh[i] || events[i].Count != 0 {
			continue
		}
		ms := events[i].Timestamp.UnixMilli()
		switch k := len(v.unseen); {
		case k > 0 && v.unseen[k-1].ms == ms:
			v.unseen[k-1].n++
		case k >= maxUnseenRuns:
			v.unseen[v.oldest].n++
		default:
			if k > 0 && ms < v.unseen[v.oldest].ms {
				v.oldest = k
			}
			v.unseen = append(v.unseen, unseenRun{ms: ms, n: 1})
		}
		v.count++
	}
}

// visible observes every recorded event as visible at now and returns how
// many there were.
func (v *visibility) visible(now time.Time) uint64 {
	nowMS := now.UnixMilli()
	for _, r := range v.unseen {
		// A listener's clock a little ahead of the writer's counts as no
		// wait rather than a negative one.
		s := max(float64(nowMS-r.ms)/1000, 0)
		for range r.n {
			v.hist.Observe(s)
		}
	}
	n := v.count
	v.unseen, v.count, v.oldest = v.unseen[:0], 0, 0
	return n
}
