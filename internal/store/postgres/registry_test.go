package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/takedown/takedown/internal/registry"
	"github.com/takedown/takedown/internal/store/postgres/pgtest"
	"github.com/takedown/takedown/internal/store/sqlite"
	"github.com/takedown/takedown/internal/store/storetest"
)

// openRegistryDB opens the store at dsn, closed in tb.Cleanup.
func openRegistryDB(tb testing.TB, dsn string) *DB {
	tb.Helper()
	db, err := Open(tb.Context(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestRegistryConformance(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	storetest.RunRegistry(t, func(tb testing.TB) registry.Store {
		return openRegistryDB(tb, srv.NewDatabase(tb))
	})
}

// sameRegistryOps makes the same changes to st that TestRegistrySameAsSQLite
// makes to both stores, and returns what each said.
func sameRegistryOps(t *testing.T, st registry.Store) []string {
	t.Helper()
	ctx := t.Context()
	var log []string
	note := func(what string, v any, err error) {
		log = append(log, fmt.Sprintf("%s: %+v, error %v", what, v, err))
	}
	ind := func(s string) registry.Indicator { return storetest.RegistryIndicator(t, s) }
	d := storetest.RegistryDate

	a := registry.Order{Case: "a", Court: "E.D. Va.", Family: "zeus", Title: "A", Effective: d("2026-01-01").Add(9 * time.Hour), Expires: d("2026-06-01")}
	late := ind("late.example.net")
	late.From, late.Until, late.Family = d("2026-02-15"), d("2026-03-15").Add(time.Nanosecond), "zeus-late"
	aInds := []registry.Indicator{ind("evil.example.com"), ind("host:c2.example.org"), ind("198.51.100.7"), ind("2001:db8::/48"),
		ind("203.0.113.0/24"), ind("10.0.0.1"), ind("9.9.9.9"), late, ind("a-b.example.com"), ind("ab.example.com")}
	res, err := st.Import(ctx, a, aInds, "t", true)
	note("dry run a", res, err)
	res, err = st.Import(ctx, a, aInds, "t", false)
	note("import a", res, err)

	b := registry.Order{Case: "b", Court: "W.D. Pa.", Family: "gameover", Effective: d("2026-03-10").Add(6 * time.Hour), Expires: d("2026-03-20")}
	gen := registry.Indicator{Kind: registry.KindDGA, Value: "newgoz?count=20&key=01051935&tlds=example&margin=6h"}
	sp, err := registry.DGASpec(gen)
	if err != nil {
		t.Fatal(err)
	}
	guard, err := registry.NewGuard([]string{sp.Domains(d("2026-03-12"))[3], sp.Domains(d("2026-03-14"))[0]})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := registry.CheckGenerated(b, &gen, guard); err != nil {
		t.Fatal(err)
	}
	res, err = st.Import(ctx, b, []registry.Indicator{gen, ind("evil.example.com"), ind("b.example.com")}, "t", false)
	note("import b", res, err)

	res, err = st.Import(ctx, registry.Order{Case: "a"}, []registry.Indicator{ind("evil.example.com"), ind("new.example.com"), ind("new.example.com")}, "t", false)
	note("import a again", res, err)
	res, err = st.Import(ctx, registry.Order{Case: "c"}, []registry.Indicator{ind("c.example.com")}, "t", false)
	if err == nil {
		t.Errorf("a new case without a court was imported: %+v", res)
	}
	note("refused import c", res, nil)
	note("extend a", nil, st.Extend(ctx, "a", d("2026-05-01").Add(12*time.Hour), "t"))

	c := registry.Order{Case: "c", Court: "S.D.N.Y.", Effective: d("2026-02-01"), Expires: d("2026-04-01")}
	res, err = st.Import(ctx, c, []registry.Indicator{ind("c.example.com"), ind("192.0.2.0/25")}, "t", false)
	note("import c", res, err)
	note("revoke c", nil, st.Revoke(ctx, "3", d("2026-03-01"), "t"))
	// A case named by a number: found by its case ID before order 1.
	res, err = st.Import(ctx, registry.Order{Case: "1", Court: "D.D.C.", Effective: d("2026-02-01"), Expires: d("2026-07-01")}, []registry.Indicator{ind("one.example.com")}, "t", false)
	note("import 1", res, err)
	note("extend case 1", nil, st.Extend(ctx, "1", d("2026-08-01"), "t"))
	return log
}

// The SQLite and PostgreSQL stores, given the same changes, answer the
// same: the same results, and the same active sets, written out in full,
// at every instant and for every case filter.
func TestRegistrySameAsSQLite(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	pg := openRegistryDB(t, srv.NewDatabase(t))
	lite, err := sqlite.OpenDir(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })

	liteLog, pgLog := sameRegistryOps(t, lite), sameRegistryOps(t, pg)
	for i := range max(len(liteLog), len(pgLog)) {
		var l, p string
		if i < len(liteLog) {
			l = liteLog[i]
		}
		if i < len(pgLog) {
			p = pgLog[i]
		}
		if l != p {
			t.Errorf("step %d:\nsqlite:     %s\npostgresql: %s", i, l, p)
		}
	}

	d := storetest.RegistryDate
	instants := []time.Time{d("2026-01-01").Add(9*time.Hour - 1), d("2026-01-01").Add(9 * time.Hour), d("2026-03-15"), d("2026-03-15").Add(1),
		d("2026-03-10").Add(6*time.Hour - 1), d("2026-05-01").Add(12 * time.Hour), d("2026-08-01").Add(-1)}
	for at := d("2025-12-31"); at.Before(d("2026-08-02")); at = at.Add(13*time.Hour + 17*time.Minute) {
		instants = append(instants, at)
	}
	var compared, entries int
	for _, at := range instants {
		for _, c := range []string{"", "a", "b", "c", "1", "none"} {
			want, err := lite.Active(t.Context(), at, c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := pg.Active(t.Context(), at, c)
			if err != nil {
				t.Fatal(err)
			}
			if w, g := storetest.RegistrySetString(want), storetest.RegistrySetString(got); w != g {
				t.Fatalf("at %s, case %q:\nsqlite:\n%s\npostgresql:\n%s", at, c, w, g)
			}
			compared++
			entries += len(want.Entries)
		}
	}
	// The comparison means something only if the sets were not all empty.
	if entries < compared {
		t.Fatalf("%d entries in %d sets: the ops seized too little to compare", entries, compared)
	}

	// The orders as order list and order show print them (but for when
	// they were made).
	show := func(st registry.Store) string {
		var b strings.Builder
		os, err := st.Orders(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range os {
			o.Created = time.Time{}
			fmt.Fprintf(&b, "%+v\n", o)
			_, inds, trail, err := st.Order(t.Context(), o.Case)
			if err != nil {
				t.Fatal(err)
			}
			for _, ind := range inds {
				fmt.Fprintf(&b, "  %+v\n", ind)
			}
			for _, a := range trail {
				if a.Action != "revoke" {
					a.At = time.Time{}
				}
				fmt.Fprintf(&b, "  %+v\n", a)
			}
		}
		return b.String()
	}
	if w, g := show(lite), show(pg); w != g {
		t.Errorf("orders:\nsqlite:\n%s\npostgresql:\n%s", w, g)
	}
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two nodes on one database: a change made on node 1 reaches the watcher
// of node 2 through the notification, long before its hour-long poll.
func TestRegistryNotifyTwoNodes(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	node1, node2 := openRegistryDB(t, dsn), openRegistryDB(t, dsn)
	now := time.Now()
	w, err := registry.NewWatcher(t.Context(), registry.WatcherOptions{Source: node2, Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	seized := func(name string) func() bool {
		return func() bool { _, ok := w.Load().Index.LookupName(name); return ok }
	}
	o := registry.Order{Case: "two-nodes", Court: "court", Effective: now.Add(-time.Hour), Expires: now.Add(24 * time.Hour)}
	if _, err := node1.Import(t.Context(), o, []registry.Indicator{storetest.RegistryIndicator(t, "first.example.com")}, "node1", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node 2's watcher sees node 1's import", seized("first.example.com"))
	if _, err := node1.Import(t.Context(), registry.Order{Case: "two-nodes"}, []registry.Indicator{storetest.RegistryIndicator(t, "second.example.com")}, "node1", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node 2's watcher sees node 1's second import", seized("second.example.com"))
	if err := node1.Revoke(t.Context(), "two-nodes", now, "node1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node 2's watcher sees node 1's revocation", func() bool { return !seized("first.example.com")() })
	if s, _ := node1.Serial(t.Context()); w.Load().Set.Serial != s {
		t.Errorf("the watcher's serial %d; the registry's %d", w.Load().Set.Serial, s)
	}
}

// The listener wakes its reader once it listens, after each change by any
// node (and not for a dry run), again after its connection was killed and
// it listens anew, and closes its channel when its context ends.
func TestRegistryChangesReconnect(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	node1, node2 := openRegistryDB(t, dsn), openRegistryDB(t, dsn)
	admin, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch := node2.Changes(ctx)
	wake := func(what string) {
		t.Helper()
		select {
		case _, ok := <-ch:
			if !ok {
				t.Fatalf("%s: the channel closed", what)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no wake-up within 30s", what)
		}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case <-ch:
			t.Fatalf("%s: a wake-up with nothing changed", what)
		case <-time.After(300 * time.Millisecond):
		}
	}
	listeners := func() []int32 {
		rows, err := admin.Query(t.Context(), `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN `+registryChannel+`'`)
		if err != nil {
			t.Fatal(err)
		}
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			t.Fatal(err)
		}
		return pids
	}

	wake("connected")
	o := registry.Order{Case: "c", Court: "court", Effective: storetest.RegistryDate("2026-01-01"), Expires: storetest.RegistryDate("2027-01-01")}
	inds := []registry.Indicator{storetest.RegistryIndicator(t, "a.example.com")}
	if _, err := node1.Import(t.Context(), o, inds, "t", true); err != nil {
		t.Fatal(err)
	}
	quiet("a dry run")
	if _, err := node1.Import(t.Context(), o, inds, "t", false); err != nil {
		t.Fatal(err)
	}
	wake("an import on the other node")

	old := listeners()
	if len(old) != 1 {
		t.Fatalf("%d listening connections; want 1", len(old))
	}
	if _, err := admin.Exec(t.Context(), `SELECT pg_terminate_backend($1)`, old[0]); err != nil {
		t.Fatal(err)
	}
	wake("listening again after the connection was killed")
	if now := listeners(); len(now) != 1 || now[0] == old[0] {
		t.Fatalf("listening connections %v after killing %d; want one new", now, old[0])
	}
	if err := node1.Extend(t.Context(), "c", storetest.RegistryDate("2028-01-01"), "t"); err != nil {
		t.Fatal(err)
	}
	wake("an extension after the reconnect")

	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			// A last wake-up may have been pending; the close follows.
			if _, ok := <-ch; ok {
				t.Fatal("a second value after the context ended")
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the channel did not close when the context ended")
	}
	waitFor(t, "the listening connection closes", func() bool { return len(listeners()) == 0 })
}

// An order's indicators come bytewise by kind and value, as on SQLite, in
// a database whose own collation orders them otherwise (ICU's en-US puts
// ':' before the digits, so "1::1" before "10.0.0.1").
func TestRegistryOrderBytewise(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	admin, err := pgx.Connect(t.Context(), srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(t.Context(), `CREATE DATABASE registry_icu TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'`); err != nil {
		t.Skipf("no ICU collation to test with: %v", err)
	}
	db := openRegistryDB(t, srv.DSN("registry_icu"))
	var icuFirst bool
	if err := db.pool.QueryRow(t.Context(), `SELECT '1::1' < '10.0.0.1'`).Scan(&icuFirst); err != nil {
		t.Fatal(err)
	}
	if !icuFirst {
		t.Skip("the database's collation is bytewise: nothing to show")
	}
	o := registry.Order{Case: "c", Court: "court", Effective: storetest.RegistryDate("2026-01-01"), Expires: storetest.RegistryDate("2027-01-01")}
	var inds []registry.Indicator
	for _, s := range []string{"9.0.0.1", "1::1", "10.0.0.1", "b.example.com"} {
		inds = append(inds, storetest.RegistryIndicator(t, s))
	}
	if _, err := db.Import(t.Context(), o, inds, "t", false); err != nil {
		t.Fatal(err)
	}
	_, got, _, err := db.Order(t.Context(), "c")
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	for _, ind := range got {
		values = append(values, string(ind.Kind)+" "+ind.Value)
	}
	if want := []string{"domain b.example.com", "ip 10.0.0.1", "ip 1::1", "ip 9.0.0.1"}; strings.Join(values, ",") != strings.Join(want, ",") {
		t.Errorf("indicators %q; want %q (bytewise)", values, want)
	}
}
