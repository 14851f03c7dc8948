package selfcheck

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/event"
	"github.com/takedown/takedown/internal/store"
	"github.com/takedown/takedown/internal/store/postgres"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/store/sqlite"
)

var (
	_ Store = (*sqlite.EventStore)(nil)
	_ Store = (*postgres.EventStore)(nil)
)

// lookupStore is an event store the page can look addresses up in.
type lookupStore interface {
	Store
	store.EventStore
}

// storeBackends open an empty store of each kind: the embedded one and
// PostgreSQL (skipped where it is not installed).
var storeBackends = []struct {
	name string
	open func(tb testing.TB) lookupStore
}{
	{"sqlite", func(tb testing.TB) lookupStore {
		db, err := sqlite.Open(tb.Context(), filepath.Join(tb.TempDir(), "t.db"))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		es, err := sqlite.NewEventStore(tb.Context(), db, sqlite.EventStoreOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { es.Close() })
		return es
	}},
	{"postgres", func(tb testing.TB) lookupStore {
		db, err := postgres.Open(tb.Context(), pgtest.Start(tb, pgtest.Options{}).NewDatabase(tb))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		return db.Events()
	}},
}

// seedStore writes events at the given (address, family, protocol, days
// before now) points into es.
func seedStore(tb testing.TB, es lookupStore, points []point) {
	tb.Helper()
	var b store.Batch
	for i, p := range points {
		b.Events = append(b.Events, event.Event{ID: fmt.Sprintf("e%d", i), SrcIP: netip.MustParseAddr(p.addr), Protocol: p.proto,
			Family: p.family, Timestamp: now.Add(-time.Duration(p.daysAgo) * 24 * time.Hour).Add(time.Duration(i) * time.Minute)})
	}
	if _, err := es.WriteBatch(tb.Context(), &b); err != nil {
		tb.Fatal(err)
	}
	if err := es.Flush(tb.Context()); err != nil {
		tb.Fatal(err)
	}
}

type point struct {
	addr, family, proto string
	daysAgo             int
}

// TestStoreLookup: the page's answers from a real store of each kind. The
// stores' own Lookup contract (windows, mapped addresses, refusals) is
// storetest.RunLookup's, run by each store's package.
func TestStoreLookup(t *testing.T) {
	for _, b := range storeBackends {
		t.Run(b.name, func(t *testing.T) { testStoreLookup(t, b.open(t)) })
	}
}

func testStoreLookup(t *testing.T, es lookupStore) {
	seedStore(t, es, []point{
		{infected, "rustock", event.ProtoHTTP, 15}, // before the window
		{infected, "rustock", event.ProtoHTTP, 13}, // its first day
		{infected, "rustock", event.ProtoHTTP, 2},
		{infected, "rustock", event.ProtoDNS, 2},
		{"::ffff:" + infected, "rustock", event.ProtoHTTPS, 0},
		{"198.51.100.8", "rustock", event.ProtoHTTP, 1}, // the neighbour
		{second, "kelihos", event.ProtoTCP, 4},
		{"2001:db8:5::43", "kelihos", event.ProtoTCP, 4},
		{resolver, "rustock", event.ProtoDNS, 6},
	})
	f := newFixture(t, func(o *Options) { o.Lookup = es })
	tests := []struct {
		addr, status string
		families     []string
		resolver     []string
	}{
		{infected, StatusSeen, []string{"rustock:2011-08-31:2011-09-13:3"}, nil},
		{second, StatusSeen, []string{"kelihos:2011-09-09:2011-09-09:1"}, nil},
		{resolver, StatusResolverOnly, nil, []string{"rustock:2011-09-07:2011-09-07:1"}},
		{"198.51.100.9", StatusNotSeen, nil, nil},
		{"2001:db8:5::44", StatusNotSeen, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			rec := f.do(t, httptest.NewRequest("GET", APIPath, nil), netip.AddrPortFrom(netip.MustParseAddr(tc.addr), 1).String())
			a := decodeAnswer(t, rec.Body.String())
			if a.Status != tc.status {
				t.Fatalf("status %s, want %s", a.Status, tc.status)
			}
			if got := famStrings(a.Families); fmt.Sprint(got) != fmt.Sprint(tc.families) {
				t.Errorf("families %v, want %v", got, tc.families)
			}
			if got := famStrings(a.ResolverFamilies); fmt.Sprint(got) != fmt.Sprint(tc.resolver) {
				t.Errorf("resolver %v, want %v", got, tc.resolver)
			}
		})
	}
}

// The lookup seeks the primary key day by day, never scans the window.
func TestSQLiteLookupPlan(t *testing.T) {
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.SQL().QueryContext(t.Context(), `EXPLAIN QUERY PLAN SELECT day, family, first_seen, last_seen, hits, protocols FROM event_day_ip WHERE ip = ? AND day IN (?,?,?) ORDER BY day, family`, []byte{1, 2, 3, 4}, 0, 86400, 172800)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan += detail + "\n"
	}
	if want := "SEARCH event_day_ip USING PRIMARY KEY (day=? AND ip=?)"; !strings.Contains(plan, want) {
		t.Fatalf("plan:\n%s\nwant %s", plan, want)
	}
}
