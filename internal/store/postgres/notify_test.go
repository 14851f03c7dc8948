package postgres

import (
	"testing"
	"time"

	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/store/storetest"
)

func TestNotifyConformance(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	storetest.RunNotify(t, func(tb testing.TB) (storetest.NotifyStore, store.EventStore) {
		db := openNotifyDB(tb, srv.NewDatabase(tb))
		return NewNotifyStore(db), db.Events()
	})
}

// openNotifyDB opens the store at dsn, closed in tb.Cleanup.
func openNotifyDB(tb testing.TB, dsn string) *DB {
	tb.Helper()
	db, err := Open(tb.Context(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// TestNotifyClaimRaceTwoNodes: two nodes (two connection pools on one
// database), each with many senders, create the same delivery, then claim
// it at the same moment: exactly one creation and one claim succeed, for
// every delivery, and again one claim once the winner's lease has run
// out.
func TestNotifyClaimRaceTwoNodes(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	nodes := []storetest.NotifyStore{NewNotifyStore(openNotifyDB(t, dsn)), NewNotifyStore(openNotifyDB(t, dsn))}
	day := time.Date(2011, 9, 13, 0, 0, 0, 0, time.UTC)
	now, lease := day.Add(30*time.Hour), 10*time.Minute
	for i := range 20 {
		sub := "isp-" + string(rune('a'+i))
		d := notify.Delivery{Subscriber: sub, Day: day, MessageID: "<" + sub + "@takedown.example>", State: notify.StatePending,
			Created: day, Rows: 1, Recipients: []string{"abuse@" + sub + ".example"}, Message: []byte("report")}
		if n := storetest.NotifyCreateAll(t, nodes, 8, d); n != 1 {
			t.Fatalf("%s: %d of 16 concurrent creations succeeded, want 1", sub, n)
		}
		if n := storetest.NotifyClaimAll(t, nodes, 12, sub, day, now, now.Add(lease)); n != 1 {
			t.Fatalf("%s: %d of 24 concurrent claims succeeded, want 1", sub, n)
		}
		if n := storetest.NotifyClaimAll(t, nodes, 12, sub, day, now.Add(lease), now.Add(2*lease)); n != 1 {
			t.Fatalf("%s after the lease: %d of 24 concurrent claims succeeded, want 1", sub, n)
		}
	}
}
