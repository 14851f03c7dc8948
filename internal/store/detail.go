package store

import (
	"context"

	"github.com/takedown/takedown/internal/event"
)

// A report's row for an aggregate key carries the detail of one of the
// key's events (notify.Collect): its best direct event, an HTTP request
// over other protocols, then the later, then the greater ID. A store that
// numbers its raw events can keep the best one's number with the key
// (Delta.Detail, DayIP.Detail), so that a report reads one raw event per
// row instead of every event of the day (SQLite does; PostgreSQL leaves it
// 0 and reports read the raw events).
//
// The rank does not hold the ID: two direct events of one key with the
// same rank (a Shadowserver row's timestamp has whole seconds) make the
// detail DetailTie until a strictly better event comes, and a report reads
// that key's raw events.
const (
	// DetailTie: the best rank is held by more than one event.
	DetailTie int64 = -1
	// DetailUnknown: the key was stored before its detail was kept.
	DetailUnknown int64 = -2
)

// IsHTTPDetail reports whether e is an HTTP request with a URL or method,
// the detail a report prefers.
func IsHTTPDetail(e *event.Event) bool {
	return (e.Protocol == event.ProtoHTTP || e.Protocol == event.ProtoHTTPS) && (e.HTTPURL != "" || e.HTTPMethod != "")
}

// DetailRank orders a key's events as reports choose their detail: 0 for
// an event that is not direct (never a detail), else higher is better.
// Timestamps outside 1970 to 2116 all rank alike (a tie).
func DetailRank(e *event.Event) int64 {
	if EventBits(e)&Direct == 0 {
		return 0
	}
	const top = 1 << 62
	ts := min(max(e.Timestamp.UnixNano(), 1), top-1)
	if IsHTTPDetail(e) {
		return top + ts
	}
	return ts
}

// FoldDetail adds an event of rank at seq (or a delta's best, seq then
// possibly DetailTie) to d's detail.
func (d *Delta) FoldDetail(rank, seq int64) {
	switch {
	case rank <= 0:
		return
	case rank > d.DetailRank:
		d.DetailRank, d.Detail = rank, seq
	case rank == d.DetailRank:
		d.Detail = DetailTie
	}
}

// DetailReader is a store that keeps details (DayIP.Detail).
type DetailReader interface {
	// EventsBySeq calls fn with each stored raw event whose number is in
	// seqs, in ascending order of number; numbers not stored (purged) and
	// records this version cannot read are skipped, as ScanDayEvents skips
	// them. fn must not keep the event.
	EventsBySeq(ctx context.Context, seqs []int64, fn func(seq int64, e *event.Event) error) error
}
