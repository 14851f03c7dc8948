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
	"github.com/takedown/takedown/internal/store/sqlite"
)

var _ Store = (*sqlite.EventStore)(nil)

// sqliteStore is a real embedded store holding events at the given
// (address, family, protocol, days before now) points.
func sqliteStore(tb testing.TB, points []point) *sqlite.EventStore {
	tb.Helper()
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
	return es
}

type point struct {
	addr, family, proto string
	daysAgo             int
}

func TestSQLiteLookup(t *testing.T) {
	es := sqliteStore(t, []point{
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
	// The store's own contract: [from, to) in whole days, mapped addresses
	// unmapped, only the asked address.
	rows, err := es.Lookup(t.Context(), netip.MustParseAddr("::ffff:"+infected), now.AddDate(0, 0, -2), now.AddDate(0, 0, -1))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].IP.String() != infected || rows[0].Protocols != store.ProtoHTTP|store.ProtoDNS || rows[0].Day.Format(time.DateOnly) != "2011-09-11" {
		t.Fatalf("rows %+v", rows)
	}
	if _, err := es.Lookup(t.Context(), netip.MustParseAddr(infected), now.AddDate(-2, 0, 0), now); err == nil {
		t.Fatal("a two-year window was accepted")
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
