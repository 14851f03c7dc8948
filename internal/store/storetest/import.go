package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/stats"
	"github.com/takedown/takedown/internal/store"
)

// RunImport runs the conformance tests of store.Importer against stores
// made by open, which must implement it: an import in several batches
// ends in exactly the state WriteBatch of the same events reaches; nothing
// shows before Commit; Rollback and a failed batch leave the store as it
// was.
func RunImport(t *testing.T, open Open) {
	importer := func(tb testing.TB) store.Importer {
		tb.Helper()
		s := open(tb)
		im, ok := s.(store.Importer)
		if !ok {
			tb.Fatalf("%T is not a store.Importer", s)
		}
		return im
	}
	t.Run("SameAsBatches", func(t *testing.T) { testImportSameAsBatches(t, importer(t), open(t)) })
	t.Run("Rollback", func(t *testing.T) { testImportRollback(t, importer(t)) })
	t.Run("FailedBatch", func(t *testing.T) { testImportFailedBatch(t, importer(t)) })
}

// importBatches is an import of three batches over two days: repeated
// sources, a row repeated within a batch and across batches, DNS and
// direct contacts of one address, bot IDs, and events of the stored
// prelude (importPrelude) imported again.
func importBatches() []*store.Batch {
	var out []*store.Batch
	n := 0
	for b := range 3 {
		var evs []event.Event
		for i := range 400 {
			n++
			proto := "http"
			if i%7 == 0 {
				proto = "dns"
			}
			e := ev(fmt.Sprintf("imp-%d", n), time.Duration(b*20+i%20)*time.Hour+time.Duration(i)*time.Second,
				fmt.Sprintf("10.1.%d.%d", b, i%150), proto, "rustock")
			e.Listener = "import:test"
			if i%5 == 0 {
				e.BotID = fmt.Sprintf("bot-%d", i%3)
			}
			evs = append(evs, e)
		}
		evs = append(evs, evs[3])                    // repeated within the batch
		evs = append(evs, importPrelude().Events[0]) // stored before the import
		if b > 0 {
			evs = append(evs, out[0].Events[10]) // imported by an earlier batch
		}
		out = append(out, &store.Batch{Events: evs, Received: uint64(len(evs)),
			Listeners: []store.ListenerDelta{{Name: "import:test", Received: uint64(len(evs))}}})
	}
	return out
}

// importPrelude is stored with WriteBatch before the import.
func importPrelude() *store.Batch {
	return &store.Batch{Events: []event.Event{
		ev("pre-1", time.Hour, "10.1.0.1", "tcp", "rustock"),
		ev("pre-2", 30*time.Hour, "10.1.9.9", "udp", "kelihos"),
	}, Received: 2}
}

// snapshot is everything an import may change, read after a Flush.
type snapshot struct {
	dayIPs  []store.DayIP
	rollups []store.Rollup
	health  store.Health
	count   int64
	sets    []string // setFigures
}

func take(tb testing.TB, s store.EventStore) snapshot {
	tb.Helper()
	to := day0.Add(3 * 24 * time.Hour)
	n, err := s.CountEvents(tb.Context(), day0, to)
	if err != nil {
		tb.Fatalf("CountEvents: %v", err)
	}
	return snapshot{dayIPs(tb, s, day0, to), rollups(tb, s, day0, to), health(tb, s), n, setFigures(tb, s)}
}

// setFigures returns the figures the stats engine reads from a store's
// hourly sets (nil for a store without them): distinct addresses and
// resolvers, overall and per dimension, for whole days, a window cutting
// two days and one cutting hours.
func setFigures(tb testing.TB, s store.EventStore) []string {
	tb.Helper()
	eng, _, ok := setsEngine(s)
	if !ok {
		return nil
	}
	var out []string
	for _, w := range [][2]time.Time{
		{day0, day0.AddDate(0, 0, 3)},
		{day0.AddDate(0, 0, 1), day0.AddDate(0, 0, 2)},
		{day0.Add(5 * time.Hour), day0.Add(30 * time.Hour)},
		{day0.Add(5*time.Hour + 30*time.Minute), day0.Add(7*time.Hour + 15*time.Minute)},
	} {
		for _, by := range []stats.Dim{"", stats.ByCountry, stats.ByASN, stats.ByFamily, stats.ByCase} {
			r, err := eng.Stats(tb.Context(), stats.Query{From: w[0], To: w[1], By: by})
			if err != nil {
				tb.Fatalf("stats: %v", err)
			}
			if r.Work.Rows != 0 {
				tb.Fatalf("stats of %s to %s read %d aggregate rows, not the sets alone", w[0], w[1], r.Work.Rows)
			}
			out = append(out, fmt.Sprintf("%s-%s by %q: %d ips, %d resolvers, rows %+v", w[0].Format(time.RFC3339), w[1].Format(time.RFC3339), by, r.UniqueIPs, r.ResolverIPsExcluded, r.Rows))
		}
	}
	return out
}

func (a snapshot) diff(b snapshot) string {
	switch {
	case !reflect.DeepEqual(a.dayIPs, b.dayIPs):
		return fmt.Sprintf("aggregates differ: %d vs %d rows", len(a.dayIPs), len(b.dayIPs))
	case !reflect.DeepEqual(a.rollups, b.rollups):
		return fmt.Sprintf("rollups differ:\n%+v\n%+v", a.rollups, b.rollups)
	case !reflect.DeepEqual(a.health, b.health):
		return fmt.Sprintf("health differs:\n%+v\n%+v", a.health, b.health)
	case a.count != b.count:
		return fmt.Sprintf("CountEvents %d vs %d", a.count, b.count)
	case !reflect.DeepEqual(a.sets, b.sets):
		return fmt.Sprintf("figures from the hourly sets differ:\n%q\n%q", a.sets, b.sets)
	}
	return ""
}

func testImportSameAsBatches(t *testing.T, s store.Importer, ref store.EventStore) {
	write(t, s, importPrelude())
	write(t, ref, importPrelude())
	before := take(t, s)

	im, err := s.BeginImport(t.Context())
	if err != nil {
		t.Fatalf("BeginImport: %v", err)
	}
	defer im.Rollback()
	var got, want store.BatchResult
	for i, b := range importBatches() {
		r, err := im.Write(t.Context(), b)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		w := write(t, ref, b)
		if !reflect.DeepEqual(r, w) {
			t.Fatalf("batch %d: import %+v, WriteBatch %+v", i, r, w)
		}
		got.Inserted += r.Inserted
		got.Duplicates += r.Duplicates
		want.Inserted += w.Inserted
		want.Duplicates += w.Duplicates
	}
	if want.Inserted != 1200 || want.Duplicates != 3+3+2 {
		t.Fatalf("WriteBatch of the import stored %d, %d duplicates; want 1200, 8", want.Inserted, want.Duplicates)
	}
	// Nothing shows before Commit (health is read without a Flush, which
	// would wait for the import on a store that serialises writers).
	if h := health(t, s); !reflect.DeepEqual(h, before.health) {
		t.Fatalf("health moved before Commit:\n%+v\n%+v", h, before.health)
	}
	if err := im.Commit(t.Context()); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if d := take(t, s).diff(take(t, ref)); d != "" {
		t.Fatalf("after Commit, the import and WriteBatch of the same batches: %s", d)
	}
	if err := im.Rollback(); err != nil {
		t.Fatalf("Rollback after Commit: %v", err)
	}
	if _, err := im.Write(t.Context(), importPrelude()); err == nil {
		t.Fatal("Write after Commit succeeded")
	}

	// The same import again stores nothing and changes no aggregate.
	after := take(t, s)
	im, err = s.BeginImport(t.Context())
	if err != nil {
		t.Fatalf("BeginImport: %v", err)
	}
	for _, b := range importBatches() {
		if r, err := im.Write(t.Context(), b); err != nil || r.Inserted != 0 {
			t.Fatalf("re-import: %+v, %v; want nothing inserted", r, err)
		}
	}
	if err := im.Commit(t.Context()); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	again := take(t, s)
	after.health, again.health = store.Health{}, store.Health{} // received moved, stored did not
	if d := after.diff(again); d != "" {
		t.Fatalf("re-import changed the store: %s", d)
	}
}

func testImportRollback(t *testing.T, s store.Importer) {
	write(t, s, importPrelude())
	before := take(t, s)
	im, err := s.BeginImport(t.Context())
	if err != nil {
		t.Fatalf("BeginImport: %v", err)
	}
	for i, b := range importBatches() {
		if _, err := im.Write(t.Context(), b); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	if err := im.Rollback(); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if err := im.Commit(t.Context()); err == nil {
		t.Fatal("Commit after Rollback succeeded")
	}
	if d := take(t, s).diff(before); d != "" {
		t.Fatalf("rolled-back import changed the store: %s", d)
	}
	// The store takes the same events afterwards, all of them new.
	im, err = s.BeginImport(t.Context())
	if err != nil {
		t.Fatalf("BeginImport: %v", err)
	}
	inserted := 0
	for _, b := range importBatches() {
		r, err := im.Write(t.Context(), b)
		if err != nil {
			t.Fatal(err)
		}
		inserted += r.Inserted
	}
	if err := im.Commit(t.Context()); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if inserted != 1200 {
		t.Fatalf("import after a rollback inserted %d, want 1200", inserted)
	}
	if h := health(t, s); h.Stored != 2+1200 {
		t.Fatalf("stored %d, want %d", h.Stored, 2+1200)
	}
}

func testImportFailedBatch(t *testing.T, s store.Importer) {
	write(t, s, importPrelude())
	before := take(t, s)
	im, err := s.BeginImport(t.Context())
	if err != nil {
		t.Fatalf("BeginImport: %v", err)
	}
	bs := importBatches()
	if _, err := im.Write(t.Context(), bs[0]); err != nil {
		t.Fatal(err)
	}
	bad := *bs[1]
	bad.Events = append([]event.Event{ev("", time.Hour, "10.9.9.9", "http", "rustock")}, bad.Events...)
	if _, err := im.Write(t.Context(), &bad); !errors.Is(err, store.ErrBadEvent) {
		t.Fatalf("batch with an event without ID: %v, want ErrBadEvent", err)
	}
	if _, err := im.Write(t.Context(), bs[2]); err == nil {
		t.Fatal("Write after a failed batch succeeded")
	}
	if err := im.Commit(t.Context()); err == nil {
		t.Fatal("Commit after a failed batch succeeded")
	}
	if err := im.Rollback(); err != nil {
		t.Fatalf("Rollback after a failed batch: %v", err)
	}
	if d := take(t, s).diff(before); d != "" {
		t.Fatalf("failed import changed the store: %s", d)
	}
	// The store still writes, and the first batch's event that bs[2]
	// repeats is new to it.
	if r := write(t, s, bs[2]); r.Inserted != 401 {
		t.Fatalf("WriteBatch after a failed import inserted %d, want 401", r.Inserted)
	}
}
