package notify_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/notify"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/postgres"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
)

// seededStore is a notification store with the events its reports read.
type seededStore interface {
	notify.Store
	notify.Source
}

// storeBackends open a store holding evs on each backend: the embedded
// one, and PostgreSQL (skipped where it is not installed), whose reads
// the reports must find the same rows in.
func storeBackends() []struct {
	name string
	open func(tb testing.TB, evs []event.Event) seededStore
} {
	return []struct {
		name string
		open func(tb testing.TB, evs []event.Event) seededStore
	}{
		{"sqlite", func(tb testing.TB, evs []event.Event) seededStore {
			db, ns := newStore(tb)
			seed(tb, db, evs)
			return ns
		}},
		{"postgres", func(tb testing.TB, evs []event.Event) seededStore {
			db := openPostgres(tb, pgtest.Start(tb, pgtest.Options{}).NewDatabase(tb))
			if _, err := db.Events().WriteBatch(tb.Context(), &store.Batch{Events: evs}); err != nil {
				tb.Fatal(err)
			}
			return postgres.NewNotifyStore(db)
		}},
	}
}

func openPostgres(tb testing.TB, dsn string) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(tb.Context(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// countingMailer accepts every message and counts them by recipients.
type countingMailer struct {
	mu   sync.Mutex
	sent map[string]int
}

func (m *countingMailer) Send(_ context.Context, _ string, to []string, _ []byte, commit func() error) error {
	if err := commit(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent[strings.Join(to, ",")]++
	return nil
}

// TestSendTwoNodes: two nodes running the notify role on one PostgreSQL
// database send the same day's reports at the same moment, several times
// over: every subscriber with data gets its report exactly once, and the
// ledger says so.
func TestSendTwoNodes(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	first := openPostgres(t, dsn)
	if _, err := first.Events().WriteBatch(t.Context(), &store.Batch{Events: seedEvents()}); err != nil {
		t.Fatal(err)
	}
	subs := []notify.Subscriber{
		subscriber(t, "isp-a", "AS64500", "abuse@isp-a.example"),
		subscriber(t, "cert-nl", "NL", "cert@cert-nl.example"),
		subscriber(t, "isp-b", "100.64.0.0/10", "abuse@isp-b.example"),
		subscriber(t, "quiet", "AS65000", "abuse@quiet.example"), // no data: no mail
	}
	if err := postgres.NewNotifyStore(first).AddSubscribers(t.Context(), subs); err != nil {
		t.Fatal(err)
	}
	mailer := &countingMailer{sent: map[string]int{}}
	now := day.Add(30 * time.Hour) // one clock: no lease runs out during the test
	var nodes []*notify.Notifier
	for _, db := range []*postgres.DB{first, openPostgres(t, dsn)} {
		ns := postgres.NewNotifyStore(db)
		n, err := notify.New(notify.Options{Store: ns, Source: ns, Mailer: mailer, Now: func() time.Time { return now },
			Message: notify.MessageOptions{From: "takedown@dcu.example"}})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 6 {
		wg.Go(func() {
			<-start
			if _, err := nodes[i%2].Send(t.Context(), day); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	ds, err := postgres.NewNotifyStore(first).Deliveries(t.Context(), day, day.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.Subscriber)
		if d.State != notify.StateSent || d.Attempts != 1 {
			t.Errorf("%s: %s after %d attempts, want sent after 1", d.Subscriber, d.State, d.Attempts)
		}
		if n := mailer.sent[strings.Join(d.Recipients, ",")]; n != 1 {
			t.Errorf("%s's report was sent %d times, want once", d.Subscriber, n)
		}
	}
	if !slices.Equal(got, []string{"cert-nl", "isp-a", "isp-b"}) {
		t.Errorf("ledger holds %v, want cert-nl, isp-a and isp-b", got)
	}
	if len(mailer.sent) != len(ds) {
		t.Errorf("mail went to %v, for %d deliveries", mailer.sent, len(ds))
	}
}
