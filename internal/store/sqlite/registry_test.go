package sqlite

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/registry"
)

func openTest(t testing.TB) *DB {
	t.Helper()
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustParse(t testing.TB, s string) registry.Indicator {
	t.Helper()
	ind, err := registry.Parse(s, "")
	if err != nil {
		t.Fatal(err)
	}
	return ind
}

func date(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestRegistryLifecycle(t *testing.T) {
	db := openTest(t)
	ctx := t.Context()
	order := registry.Order{Case: "rustock", Court: "W.D. Wash.", Family: "rustock", Effective: date("2011-03-16"), Expires: date("2013-03-16")}
	inds := []registry.Indicator{mustParse(t, "evil-c2.com"), mustParse(t, "93.184.216.34"), mustParse(t, "93.184.216.0/24")}
	inds[0].Family = "override"

	s0, _ := db.Serial(ctx)
	if _, err := db.Import(ctx, order, inds, "t", true); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.Serial(ctx); s != s0 {
		t.Fatalf("dry run changed the serial")
	}
	if o, _ := db.Orders(ctx); len(o) != 0 {
		t.Fatalf("dry run created an order")
	}
	res, err := db.Import(ctx, order, inds, "t", false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Added != 3 {
		t.Fatalf("import: %+v", res)
	}
	s1, _ := db.Serial(ctx)
	if s1 <= s0 {
		t.Fatalf("serial did not increase: %d -> %d", s0, s1)
	}
	// Importing into the existing case adds only what is new; court etc.
	// may be omitted.
	res, err = db.Import(ctx, registry.Order{Case: "rustock"}, []registry.Indicator{mustParse(t, "evil-c2.com"), mustParse(t, "other.net")}, "t", false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created || res.Added != 1 || res.AlreadyPresent != 1 {
		t.Fatalf("second import: %+v", res)
	}
	if _, err := db.Import(ctx, registry.Order{Case: "new-case"}, inds, "t", false); err == nil {
		t.Fatal("a new case without court and dates must be refused")
	}

	before, err := db.Active(ctx, date("2011-03-15"), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Entries) != 0 || !before.NextChange.Equal(date("2011-03-16")) {
		t.Fatalf("before effective: %d entries, next change %v", len(before.Entries), before.NextChange)
	}
	during, err := db.Active(ctx, date("2012-01-01"), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(during.Entries) != 4 {
		t.Fatalf("during: %+v", during.Entries)
	}
	got := []string{}
	for _, e := range during.Entries {
		got = append(got, string(e.Kind)+" "+e.Value+" "+e.Family)
	}
	want := []string{"domain evil-c2.com override", "domain other.net rustock", "ip 93.184.216.34 rustock", "cidr 93.184.216.0/24 rustock"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("entries = %q; want %q", got, want)
		}
	}
	if !during.Entries[3].Prefix.IsValid() || during.Entries[3].Prefix.Bits() != 24 {
		t.Fatalf("cidr prefix: %v", during.Entries[3].Prefix)
	}
	if !during.NextChange.Equal(date("2013-03-16")) {
		t.Fatalf("next change %v", during.NextChange)
	}
	// The expiry instant itself is outside the window.
	if at, _ := db.Active(ctx, date("2013-03-16"), ""); len(at.Entries) != 0 {
		t.Fatalf("at expiry: %d entries", len(at.Entries))
	}
	if err := db.Extend(ctx, "rustock", date("2014-01-01"), "t"); err != nil {
		t.Fatal(err)
	}
	if at, _ := db.Active(ctx, date("2013-06-01"), ""); len(at.Entries) != 4 {
		t.Fatalf("after extend: %d entries", len(at.Entries))
	}
	if err := db.Revoke(ctx, "1", date("2012-06-01"), "t"); err != nil {
		t.Fatal(err)
	}
	if at, _ := db.Active(ctx, date("2012-01-01"), ""); len(at.Entries) != 0 {
		t.Fatalf("after revoke: %d entries", len(at.Entries))
	}
	if err := db.Extend(ctx, "rustock", date("2015-01-01"), "t"); err == nil {
		t.Fatal("extending a revoked order must fail")
	}
	sum, list, trail, err := db.Order(ctx, "rustock")
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Revoked || len(list) != 4 || sum.Counts[registry.KindDomain] != 2 {
		t.Fatalf("order: %+v %d", sum, len(list))
	}
	actions := ""
	for _, a := range trail {
		actions += a.Action + " "
	}
	if actions != "create import import extend revoke " {
		t.Fatalf("audit trail: %q", actions)
	}
	if _, _, _, err := db.Order(ctx, "nope"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("missing order: %v", err)
	}
}

func TestIndicatorWindowNarrowsOrder(t *testing.T) {
	db := openTest(t)
	ctx := t.Context()
	ind := mustParse(t, "late.evil.com")
	ind.From, ind.Until = date("2011-06-01"), date("2012-01-01")
	if _, err := db.Import(ctx, registry.Order{Case: "c", Court: "x", Effective: date("2011-03-16"), Expires: date("2013-03-16")},
		[]registry.Indicator{ind, mustParse(t, "early.evil.com")}, "t", false); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		at   string
		want int
	}{{"2011-04-01", 1}, {"2011-06-01", 2}, {"2012-01-01", 1}} {
		set, err := db.Active(ctx, date(tt.at), "")
		if err != nil {
			t.Fatal(err)
		}
		if len(set.Entries) != tt.want {
			t.Errorf("at %s: %d entries; want %d", tt.at, len(set.Entries), tt.want)
		}
	}
	set, _ := db.Active(ctx, date("2011-04-01"), "")
	if !set.NextChange.Equal(date("2011-06-01")) {
		t.Errorf("next change %v", set.NextChange)
	}
	if set, _ := db.Active(ctx, date("2011-04-01"), "other-case"); len(set.Entries) != 0 {
		t.Errorf("case filter: %d entries", len(set.Entries))
	}
}
