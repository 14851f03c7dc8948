package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/storetest"
)

func TestImportConformance(t *testing.T) {
	storetest.RunImport(t, func(tb testing.TB) store.EventStore {
		_, s := openEvents(tb, filepath.Join(tb.TempDir(), FileName))
		return s
	})
	// An import holding more aggregate keys than MaxPending writes them in
	// several runs inside its transaction: the same end state, and the
	// same rollback.
	t.Run("SmallRuns", func(t *testing.T) {
		storetest.RunImport(t, func(tb testing.TB) store.EventStore {
			db, err := Open(tb.Context(), filepath.Join(tb.TempDir(), FileName))
			if err != nil {
				tb.Fatal(err)
			}
			s, err := NewEventStore(tb.Context(), db, EventStoreOptions{MaxPending: 50})
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { s.Close(); db.Close() })
			return s
		})
	})
}

// TestImportStringView: an import pins the writer's view of the string
// table for its transaction (writerStrings.held). Strings one batch adds
// are used by the next batches of the same import; strings an import
// rolled back are not trusted afterwards: the next writer adds them
// again. Every record reads back whole.
func TestImportStringView(t *testing.T) {
	_, s := openEvents(t, filepath.Join(t.TempDir(), FileName))
	base := storetest.RecordCases()[0]
	mk := func(prefix string, from, n int) []event.Event {
		evs := make([]event.Event, n)
		for i := range evs {
			e := base
			e.ID = fmt.Sprintf("%s-%06d", prefix, from+i)
			e.HTTPURL = fmt.Sprintf("/%s/%d", prefix, (from+i)%50) // each string used by several batches
			e.HTTPAgent = prefix + "-agent"
			evs[i] = e
		}
		return evs
	}
	var want []event.Event
	write := func(im store.Import, evs []event.Event) {
		t.Helper()
		if _, err := im.Write(t.Context(), &store.Batch{Events: evs}); err != nil {
			t.Fatal(err)
		}
	}
	im, err := s.BeginImport(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for b := range 3 {
		evs := mk("a", b*40, 40)
		write(im, evs)
		want = append(want, evs...)
	}
	if err := im.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	// New strings in an import that rolls back, then the same strings
	// in a plain batch and in a second import.
	im, err = s.BeginImport(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	write(im, mk("b", 0, 60))
	if err := im.Rollback(); err != nil {
		t.Fatal(err)
	}
	evs := mk("b", 100, 60)
	if _, err := s.WriteBatch(t.Context(), &store.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	want = append(want, evs...)
	im, err = s.BeginImport(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	evs = mk("b", 200, 60)
	write(im, evs)
	if err := im.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	want = append(want, evs...)
	recs, _, err := s.RecordsAfter(t.Context(), 0, len(want)+10)
	if err != nil {
		t.Fatal(err)
	}
	storetest.SameRecords(t, recs, want)
}
