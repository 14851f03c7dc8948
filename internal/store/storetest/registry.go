package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/registry"
)

// RunRegistry runs the conformance suite of registry.Store against stores
// made by open: a new, empty store for each subtest, which the backend
// closes in tb.Cleanup. Every backend gives the same answers: the same
// import results, order IDs, audit records and active sets.
func RunRegistry(t *testing.T, open func(tb testing.TB) registry.Store) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, registry.Store)
	}{
		{"Lifecycle", testRegistryLifecycle},
		{"DryRun", testRegistryDryRun},
		{"ImportRefusals", testRegistryImportRefusals},
		{"ImportDuplicates", testRegistryImportDuplicates},
		{"ActiveWindow", testRegistryActiveWindow},
		{"IndicatorWindowNarrowsOrder", testRegistryIndicatorWindow},
		{"CaseFilter", testRegistryCaseFilter},
		{"Extend", testRegistryExtend},
		{"Revoke", testRegistryRevoke},
		{"AuditTrail", testRegistryAuditTrail},
		{"Serial", testRegistrySerial},
		{"OrderLookup", testRegistryOrderLookup},
		{"Orders", testRegistryOrders},
		{"RoundTrip", testRegistryRoundTrip},
		{"Generated", testRegistryGenerated},
		{"ConcurrentImports", testRegistryConcurrentImports},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

// RegistryDate is midnight UTC of s (2006-01-02).
func RegistryDate(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

// RegistryIndicator parses s as an import file's line would be.
func RegistryIndicator(tb testing.TB, s string) registry.Indicator {
	tb.Helper()
	ind, err := registry.Parse(s, "")
	if err != nil {
		tb.Fatal(err)
	}
	return ind
}

// regOrder is an order of case c in force from effective to expires.
func regOrder(c, effective, expires string) registry.Order {
	return registry.Order{Case: c, Court: "W.D. Wash.", Family: "rustock", Effective: RegistryDate(effective), Expires: RegistryDate(expires)}
}

func regImport(tb testing.TB, st registry.Store, o registry.Order, inds ...registry.Indicator) registry.ImportResult {
	tb.Helper()
	res, err := st.Import(tb.Context(), o, inds, "tester", false)
	if err != nil {
		tb.Fatalf("import into %s: %v", o.Case, err)
	}
	return res
}

func regActive(tb testing.TB, st registry.Store, at time.Time, caseID string) *registry.ActiveSet {
	tb.Helper()
	set, err := st.Active(tb.Context(), at, caseID)
	if err != nil {
		tb.Fatalf("Active(%s, %q): %v", at, caseID, err)
	}
	return set
}

func regSerial(tb testing.TB, st registry.Store) uint32 {
	tb.Helper()
	s, err := st.Serial(tb.Context())
	if err != nil {
		tb.Fatalf("Serial: %v", err)
	}
	return s
}

func regOrderOf(tb testing.TB, st registry.Store, id string) (*registry.OrderSummary, []registry.Indicator, []registry.AuditRecord) {
	tb.Helper()
	sum, inds, trail, err := st.Order(tb.Context(), id)
	if err != nil {
		tb.Fatalf("Order(%s): %v", id, err)
	}
	return sum, inds, trail
}

func regOrders(tb testing.TB, st registry.Store) []registry.OrderSummary {
	tb.Helper()
	os, err := st.Orders(tb.Context())
	if err != nil {
		tb.Fatalf("Orders: %v", err)
	}
	return os
}

// RegistrySetString is set written out in full, one entry a line: every
// field, times to the nanosecond with their zone, so that two sets are the
// same exactly when their strings are.
func RegistrySetString(set *registry.ActiveSet) string {
	if set == nil {
		return "<nil>"
	}
	tm := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Format(time.RFC3339Nano) + "@" + t.Location().String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "at %s serial %d next %s\n", tm(set.At), set.Serial, tm(set.NextChange))
	for _, e := range set.Entries {
		fmt.Fprintf(&b, "%s %q prefix=%s family=%q case=%q court=%q order=%d [%s, %s) day=%s\n",
			e.Kind, e.Value, e.Prefix, e.Family, e.Case, e.Court, e.OrderID, tm(e.Effective), tm(e.Expires), tm(e.Day))
	}
	return b.String()
}

func regSkips(sk []registry.Skip) string {
	var b strings.Builder
	for _, s := range sk {
		fmt.Fprintf(&b, "%s %s %q;", s.Name, s.Day.Format(time.RFC3339Nano)+"@"+s.Day.Location().String(), s.Reason)
	}
	return b.String()
}

// regValues is each entry as "kind value family".
func regValues(set *registry.ActiveSet) []string {
	out := []string{}
	for _, e := range set.Entries {
		out = append(out, string(e.Kind)+" "+e.Value+" "+e.Family)
	}
	return out
}

func regActions(trail []registry.AuditRecord) string {
	var b strings.Builder
	for _, a := range trail {
		b.WriteString(a.Action + " ")
	}
	return b.String()
}

// The whole life of an order: dry run, import, a second import into the
// case, the window, extend, revoke (by numeric ID) and what order show
// says afterwards.
func testRegistryLifecycle(t *testing.T, st registry.Store) {
	ctx := t.Context()
	order := regOrder("rustock", "2011-03-16", "2013-03-16")
	inds := []registry.Indicator{RegistryIndicator(t, "evil-c2.com"), RegistryIndicator(t, "93.184.216.34"), RegistryIndicator(t, "93.184.216.0/24")}
	inds[0].Family = "override"

	s0 := regSerial(t, st)
	if _, err := st.Import(ctx, order, inds, "t", true); err != nil {
		t.Fatal(err)
	}
	if s := regSerial(t, st); s != s0 {
		t.Fatalf("dry run changed the serial")
	}
	if o := regOrders(t, st); len(o) != 0 {
		t.Fatalf("dry run created an order")
	}
	res := regImport(t, st, order, inds...)
	if !res.Created || res.Added != 3 {
		t.Fatalf("import: %+v", res)
	}
	s1 := regSerial(t, st)
	if s1 <= s0 {
		t.Fatalf("serial did not increase: %d -> %d", s0, s1)
	}
	// Importing into the existing case adds only what is new; court etc.
	// may be omitted.
	res = regImport(t, st, registry.Order{Case: "rustock"}, RegistryIndicator(t, "evil-c2.com"), RegistryIndicator(t, "other.net"))
	if res.Created || res.Added != 1 || res.AlreadyPresent != 1 {
		t.Fatalf("second import: %+v", res)
	}
	if _, err := st.Import(ctx, registry.Order{Case: "new-case"}, inds, "t", false); err == nil {
		t.Fatal("a new case without court and dates must be refused")
	}

	before := regActive(t, st, RegistryDate("2011-03-15"), "")
	if len(before.Entries) != 0 || !before.NextChange.Equal(RegistryDate("2011-03-16")) {
		t.Fatalf("before effective: %d entries, next change %v", len(before.Entries), before.NextChange)
	}
	during := regActive(t, st, RegistryDate("2012-01-01"), "")
	want := []string{"domain evil-c2.com override", "domain other.net rustock", "ip 93.184.216.34 rustock", "cidr 93.184.216.0/24 rustock"}
	if got := regValues(during); !reflect.DeepEqual(got, want) {
		t.Fatalf("entries = %q; want %q", got, want)
	}
	if !during.Entries[3].Prefix.IsValid() || during.Entries[3].Prefix.Bits() != 24 {
		t.Fatalf("cidr prefix: %v", during.Entries[3].Prefix)
	}
	if !during.NextChange.Equal(RegistryDate("2013-03-16")) {
		t.Fatalf("next change %v", during.NextChange)
	}
	// The expiry instant itself is outside the window.
	if at := regActive(t, st, RegistryDate("2013-03-16"), ""); len(at.Entries) != 0 {
		t.Fatalf("at expiry: %d entries", len(at.Entries))
	}
	if err := st.Extend(ctx, "rustock", RegistryDate("2014-01-01"), "t"); err != nil {
		t.Fatal(err)
	}
	if at := regActive(t, st, RegistryDate("2013-06-01"), ""); len(at.Entries) != 4 {
		t.Fatalf("after extend: %d entries", len(at.Entries))
	}
	// "1": the dry run left no gap in the order IDs.
	if err := st.Revoke(ctx, "1", RegistryDate("2012-06-01"), "t"); err != nil {
		t.Fatal(err)
	}
	if at := regActive(t, st, RegistryDate("2012-01-01"), ""); len(at.Entries) != 0 {
		t.Fatalf("after revoke: %d entries", len(at.Entries))
	}
	if err := st.Extend(ctx, "rustock", RegistryDate("2015-01-01"), "t"); err == nil {
		t.Fatal("extending a revoked order must fail")
	}
	sum, list, trail := regOrderOf(t, st, "rustock")
	if !sum.Revoked || len(list) != 4 || sum.Counts[registry.KindDomain] != 2 {
		t.Fatalf("order: %+v %d", sum, len(list))
	}
	if actions := regActions(trail); actions != "create import import extend revoke " {
		t.Fatalf("audit trail: %q", actions)
	}
	if _, _, _, err := st.Order(ctx, "nope"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("missing order: %v", err)
	}
}

// A dry run says what the import would do and changes nothing: no order,
// indicator, audit record or serial, and no gap in the order IDs.
func testRegistryDryRun(t *testing.T, st registry.Store) {
	ctx := t.Context()
	order := regOrder("dry", "2011-03-16", "2013-03-16")
	inds := []registry.Indicator{RegistryIndicator(t, "a.example.com"), RegistryIndicator(t, "b.example.com")}
	s0 := regSerial(t, st)
	dry, err := st.Import(ctx, order, inds, "t", true)
	if err != nil {
		t.Fatal(err)
	}
	if !dry.Created || dry.Added != 2 || dry.AlreadyPresent != 0 {
		t.Fatalf("dry run of a new case: %+v; want created, 2 added", dry)
	}
	if s := regSerial(t, st); s != s0 {
		t.Fatalf("dry run changed the serial: %d -> %d", s0, s)
	}
	if _, _, _, err := st.Order(ctx, "dry"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("dry run created the order: %v", err)
	}
	if set := regActive(t, st, RegistryDate("2012-01-01"), ""); len(set.Entries) != 0 {
		t.Fatalf("dry run: %d entries in force", len(set.Entries))
	}
	real := regImport(t, st, order, inds[0])
	if real.OrderID != dry.OrderID {
		t.Errorf("the import's order ID is %d; the dry run said %d", real.OrderID, dry.OrderID)
	}
	s1 := regSerial(t, st)

	// Into the existing case: counts what is new, adds nothing.
	dry, err = st.Import(ctx, registry.Order{Case: "dry"}, append(inds, RegistryIndicator(t, "c.example.com")), "t", true)
	if err != nil {
		t.Fatal(err)
	}
	if dry.Created || dry.Added != 2 || dry.AlreadyPresent != 1 || dry.OrderID != real.OrderID {
		t.Fatalf("dry run into the case: %+v; want 2 added, 1 already present, order %d", dry, real.OrderID)
	}
	sum, list, trail := regOrderOf(t, st, "dry")
	if len(list) != 1 || sum.Counts[registry.KindDomain] != 1 {
		t.Fatalf("dry run added indicators: %+v", list)
	}
	if a := regActions(trail); a != "create import " {
		t.Fatalf("dry run wrote the audit trail: %q", a)
	}
	if s := regSerial(t, st); s != s1 {
		t.Fatalf("dry run changed the serial: %d -> %d", s1, s)
	}
}

// A new case needs a court and a window that ends after it starts; a
// refused import changes nothing.
func testRegistryImportRefusals(t *testing.T, st registry.Store) {
	ctx := t.Context()
	ind := RegistryIndicator(t, "evil.example.com")
	good := regOrder("c", "2011-03-16", "2013-03-16")
	s0 := regSerial(t, st)
	for _, c := range []struct {
		name string
		edit func(*registry.Order)
	}{
		{"no court", func(o *registry.Order) { o.Court = "" }},
		{"no effective time", func(o *registry.Order) { o.Effective = time.Time{} }},
		{"no expiry", func(o *registry.Order) { o.Expires = time.Time{} }},
		{"expiry at the effective time", func(o *registry.Order) { o.Expires = o.Effective }},
		{"expiry before the effective time", func(o *registry.Order) { o.Expires = o.Effective.Add(-time.Hour) }},
	} {
		o := good
		c.edit(&o)
		for _, dry := range []bool{true, false} {
			if res, err := st.Import(ctx, o, []registry.Indicator{ind}, "t", dry); err == nil {
				t.Errorf("%s (dry run %v): imported %+v", c.name, dry, res)
			}
		}
	}
	if s := regSerial(t, st); s != s0 {
		t.Errorf("refused imports changed the serial: %d -> %d", s0, s)
	}
	if os := regOrders(t, st); len(os) != 0 {
		t.Errorf("refused imports created %d orders", len(os))
	}
	if res := regImport(t, st, good, ind); !res.Created || res.Added != 1 {
		t.Fatalf("import after the refusals: %+v", res)
	}
}

// An indicator is one per order, kind and value: a second copy in the
// same import is already present, the same name as another kind is not,
// and an import that adds nothing leaves no audit record and no serial
// change.
func testRegistryImportDuplicates(t *testing.T, st registry.Store) {
	o := regOrder("dup", "2011-03-16", "2013-03-16")
	res := regImport(t, st, o, RegistryIndicator(t, "evil.example.com"), RegistryIndicator(t, "evil.example.com"), RegistryIndicator(t, "host:evil.example.com"))
	if !res.Created || res.Added != 2 || res.AlreadyPresent != 1 {
		t.Fatalf("import with a duplicate: %+v; want 2 added, 1 already present", res)
	}
	s := regSerial(t, st)
	res = regImport(t, st, registry.Order{Case: "dup"}, RegistryIndicator(t, "evil.example.com"))
	if res.Created || res.Added != 0 || res.AlreadyPresent != 1 {
		t.Fatalf("re-import: %+v", res)
	}
	if s2 := regSerial(t, st); s2 != s {
		t.Errorf("an import that added nothing changed the serial: %d -> %d", s, s2)
	}
	if _, _, trail := regOrderOf(t, st, "dup"); regActions(trail) != "create import " {
		t.Errorf("an import that added nothing was audited: %q", regActions(trail))
	}
	// The same indicator in another case is that case's own.
	if res := regImport(t, st, regOrder("other", "2011-03-16", "2013-03-16"), RegistryIndicator(t, "evil.example.com")); res.Added != 1 {
		t.Fatalf("the same indicator in another case: %+v", res)
	}
	set := regActive(t, st, RegistryDate("2012-01-01"), "")
	got := []string{}
	for _, e := range set.Entries {
		got = append(got, string(e.Kind)+" "+e.Value+" "+e.Case)
	}
	want := []string{"domain evil.example.com dup", "domain evil.example.com other", "host evil.example.com dup"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries %q; want %q", got, want)
	}
}

// The window is effective ≤ t < expiry, to the nanosecond, and each set
// says when it next changes; an entry carries its order's case, court, ID
// and window, and addresses their prefixes; entries are in the registry's
// order (kind, then addresses numerically).
func testRegistryActiveWindow(t *testing.T, st registry.Store) {
	o := regOrder("win", "2011-03-16", "2013-03-16")
	o.Effective = o.Effective.Add(6*time.Hour + 7)
	res := regImport(t, st, o, RegistryIndicator(t, "10.0.0.2"), RegistryIndicator(t, "9.0.0.1"), RegistryIndicator(t, "2001:db8::/32"),
		RegistryIndicator(t, "host:c2.example.net"), RegistryIndicator(t, "evil.example.com"))
	ns := time.Nanosecond
	for _, c := range []struct {
		name    string
		at      time.Time
		entries int
		next    time.Time
	}{
		{"long before", RegistryDate("2010-01-01"), 0, o.Effective},
		{"a nanosecond before", o.Effective.Add(-ns), 0, o.Effective},
		{"at the effective time", o.Effective, 5, o.Expires},
		{"inside", RegistryDate("2012-01-01"), 5, o.Expires},
		{"a nanosecond before expiry", o.Expires.Add(-ns), 5, o.Expires},
		{"at expiry", o.Expires, 0, time.Time{}},
		{"after", RegistryDate("2020-01-01"), 0, time.Time{}},
	} {
		set := regActive(t, st, c.at, "")
		if len(set.Entries) != c.entries || !set.NextChange.Equal(c.next) {
			t.Errorf("%s: %d entries, next change %v; want %d, %v", c.name, len(set.Entries), set.NextChange, c.entries, c.next)
		}
		if !set.At.Equal(c.at) || set.At.Location() != time.UTC {
			t.Errorf("%s: set at %v; want %v in UTC", c.name, set.At, c.at)
		}
	}
	in := time.Date(2012, 1, 1, 3, 0, 0, 0, time.FixedZone("UTC+3", 3*3600))
	set := regActive(t, st, in, "")
	if set.Serial != regSerial(t, st) {
		t.Errorf("set serial %d; the store's is %d", set.Serial, regSerial(t, st))
	}
	want := []string{"domain evil.example.com rustock", "host c2.example.net rustock", "ip 9.0.0.1 rustock", "ip 10.0.0.2 rustock", "cidr 2001:db8::/32 rustock"}
	if got := regValues(set); !reflect.DeepEqual(got, want) {
		t.Fatalf("entries %q; want %q", got, want)
	}
	for _, e := range set.Entries {
		if e.Case != "win" || e.Court != o.Court || e.OrderID != res.OrderID || !e.Effective.Equal(o.Effective) || !e.Expires.Equal(o.Expires) {
			t.Errorf("entry %+v; want case win, court %s, order %d, window [%v, %v)", e, o.Court, res.OrderID, o.Effective, o.Expires)
		}
		if e.Effective.Location() != time.UTC || e.Expires.Location() != time.UTC {
			t.Errorf("entry %s: window not in UTC", e.Value)
		}
	}
	for i, want := range []string{"invalid Prefix", "invalid Prefix", "9.0.0.1/32", "10.0.0.2/32", "2001:db8::/32"} {
		if p := set.Entries[i].Prefix.String(); p != want {
			t.Errorf("%s: prefix %s; want %s", set.Entries[i].Value, p, want)
		}
	}
}

// An indicator's own window (STIX valid_from/valid_until) narrows its
// order's, and its edges are changes.
func testRegistryIndicatorWindow(t *testing.T, st registry.Store) {
	ind := RegistryIndicator(t, "late.evil.com")
	ind.From, ind.Until = RegistryDate("2011-06-01"), RegistryDate("2012-01-01")
	wide := RegistryIndicator(t, "wide.evil.com")
	wide.From, wide.Until = RegistryDate("2010-01-01"), RegistryDate("2020-01-01")
	regImport(t, st, registry.Order{Case: "c", Court: "x", Effective: RegistryDate("2011-03-16"), Expires: RegistryDate("2013-03-16")},
		ind, RegistryIndicator(t, "early.evil.com"), wide)
	for _, tt := range []struct {
		at   string
		want int
		next string
	}{{"2011-04-01", 2, "2011-06-01"}, {"2011-06-01", 3, "2012-01-01"}, {"2012-01-01", 2, "2013-03-16"}, {"2013-03-16", 0, ""}} {
		set := regActive(t, st, RegistryDate(tt.at), "")
		if len(set.Entries) != tt.want {
			t.Errorf("at %s: %d entries; want %d", tt.at, len(set.Entries), tt.want)
		}
		var next time.Time
		if tt.next != "" {
			next = RegistryDate(tt.next)
		}
		if !set.NextChange.Equal(next) {
			t.Errorf("at %s: next change %v; want %v", tt.at, set.NextChange, next)
		}
	}
	set := regActive(t, st, RegistryDate("2011-07-01"), "")
	for _, e := range set.Entries {
		from, until := RegistryDate("2011-03-16"), RegistryDate("2013-03-16")
		if e.Value == "late.evil.com" {
			from, until = ind.From, ind.Until
		}
		if !e.Effective.Equal(from) || !e.Expires.Equal(until) {
			t.Errorf("%s: in force [%v, %v); want [%v, %v)", e.Value, e.Effective, e.Expires, from, until)
		}
	}
}

// A case filter gives that case's entries and changes only; an unknown
// case gives nothing.
func testRegistryCaseFilter(t *testing.T, st registry.Store) {
	regImport(t, st, regOrder("a", "2011-01-01", "2013-01-01"), RegistryIndicator(t, "a.example.com"), RegistryIndicator(t, "shared.example.com"))
	regImport(t, st, regOrder("b", "2011-06-01", "2014-01-01"), RegistryIndicator(t, "b.example.com"), RegistryIndicator(t, "shared.example.com"))
	at := RegistryDate("2011-03-01")
	if set := regActive(t, st, at, ""); len(set.Entries) != 2 || !set.NextChange.Equal(RegistryDate("2011-06-01")) {
		t.Errorf("every case: %q, next change %v", regValues(set), set.NextChange)
	}
	set := regActive(t, st, at, "a")
	if got := regValues(set); !reflect.DeepEqual(got, []string{"domain a.example.com rustock", "domain shared.example.com rustock"}) || !set.NextChange.Equal(RegistryDate("2013-01-01")) {
		t.Errorf("case a: %q, next change %v; want its own two and its expiry", got, set.NextChange)
	}
	set = regActive(t, st, RegistryDate("2012-01-01"), "b")
	for _, e := range set.Entries {
		if e.Case != "b" {
			t.Errorf("case b's set holds %s of case %s", e.Value, e.Case)
		}
	}
	if len(set.Entries) != 2 {
		t.Errorf("case b: %q", regValues(set))
	}
	if set := regActive(t, st, RegistryDate("2012-01-01"), "other-case"); len(set.Entries) != 0 || !set.NextChange.IsZero() {
		t.Errorf("unknown case: %d entries, next change %v", len(set.Entries), set.NextChange)
	}
	if set := regActive(t, st, RegistryDate("2012-01-01"), "1"); len(set.Entries) != 0 {
		t.Errorf("the filter is a case ID, not an order ID: %q", regValues(set))
	}
}

// Extend moves the expiry (later or earlier, by case or numeric ID), is
// audited with both expiries, and refuses an expiry not after the effective
// time and a missing order.
func testRegistryExtend(t *testing.T, st registry.Store) {
	ctx := t.Context()
	res := regImport(t, st, regOrder("ext", "2011-03-16", "2013-03-16"), RegistryIndicator(t, "evil.example.com"))
	if err := st.Extend(ctx, "ext", RegistryDate("2014-01-01"), "ann"); err != nil {
		t.Fatal(err)
	}
	if set := regActive(t, st, RegistryDate("2013-06-01"), ""); len(set.Entries) != 1 || !set.NextChange.Equal(RegistryDate("2014-01-01")) {
		t.Fatalf("after extend: %d entries, next change %v", len(set.Entries), set.NextChange)
	}
	// Shortened, by numeric ID, in another zone.
	shorter := time.Date(2012, 1, 1, 2, 0, 0, 0, time.FixedZone("UTC+2", 2*3600))
	if err := st.Extend(ctx, strconv.FormatInt(res.OrderID, 10), shorter, "bob"); err != nil {
		t.Fatal(err)
	}
	if set := regActive(t, st, RegistryDate("2012-06-01"), ""); len(set.Entries) != 0 {
		t.Fatalf("after shortening: %d entries", len(set.Entries))
	}
	sum, _, trail := regOrderOf(t, st, "ext")
	if !sum.Expires.Equal(shorter) || sum.Expires.Location() != time.UTC {
		t.Errorf("expires %v; want %v in UTC", sum.Expires, shorter)
	}
	s := regSerial(t, st)
	if err := st.Extend(ctx, "ext", RegistryDate("2011-03-16"), "t"); err == nil {
		t.Error("an expiry at the effective time was accepted")
	}
	if err := st.Extend(ctx, "ext", RegistryDate("2010-01-01"), "t"); err == nil {
		t.Error("an expiry before the effective time was accepted")
	}
	if err := st.Extend(ctx, "nope", RegistryDate("2015-01-01"), "t"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("extending a missing order: %v; want ErrNotFound", err)
	}
	if err := st.Extend(ctx, "99", RegistryDate("2015-01-01"), "t"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("extending a missing order ID: %v; want ErrNotFound", err)
	}
	if s2 := regSerial(t, st); s2 != s {
		t.Errorf("refused extensions changed the serial: %d -> %d", s, s2)
	}
	if _, _, trail2 := regOrderOf(t, st, "ext"); len(trail2) != len(trail) {
		t.Errorf("refused extensions were audited: %q", regActions(trail2))
	}
	want := []string{"expires 2013-03-16T00:00:00Z -> 2014-01-01T00:00:00Z", "expires 2014-01-01T00:00:00Z -> 2012-01-01T00:00:00Z"}
	var got []string
	for _, a := range trail {
		if a.Action == "extend" {
			got = append(got, a.Actor+": "+a.Detail)
		}
	}
	if !reflect.DeepEqual(got, []string{"ann: " + want[0], "bob: " + want[1]}) {
		t.Errorf("extensions audited as %q", got)
	}
}

// Revoke takes an order's entries out of every set, records its instant,
// and cannot be undone by an extension or repeated.
func testRegistryRevoke(t *testing.T, st registry.Store) {
	ctx := t.Context()
	regImport(t, st, regOrder("keep", "2011-03-16", "2013-03-16"), RegistryIndicator(t, "kept.example.com"))
	res := regImport(t, st, regOrder("rev", "2011-03-16", "2013-03-16"), RegistryIndicator(t, "revoked.example.com"), RegistryIndicator(t, "192.0.2.0/24"))
	at := time.Date(2012, 6, 1, 12, 30, 0, 5, time.UTC)
	if err := st.Revoke(ctx, "rev", at, "judge"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"2011-06-01", "2012-07-01"} {
		set := regActive(t, st, RegistryDate(d), "")
		if got := regValues(set); !reflect.DeepEqual(got, []string{"domain kept.example.com rustock"}) {
			t.Errorf("at %s after the revocation: %q", d, got)
		}
		if set := regActive(t, st, RegistryDate(d), "rev"); len(set.Entries) != 0 || !set.NextChange.IsZero() {
			t.Errorf("at %s, case rev: %d entries, next change %v", d, len(set.Entries), set.NextChange)
		}
	}
	sum, inds, trail := regOrderOf(t, st, strconv.FormatInt(res.OrderID, 10))
	if !sum.Revoked || !sum.RevokedAt.Equal(at) || len(inds) != 2 {
		t.Errorf("revoked order: revoked %v at %v, %d indicators", sum.Revoked, sum.RevokedAt, len(inds))
	}
	last := trail[len(trail)-1]
	if last.Action != "revoke" || last.Actor != "judge" || !last.At.Equal(at) || last.Detail != "" || last.OrderID != res.OrderID {
		t.Errorf("revocation audited as %+v", last)
	}
	s := regSerial(t, st)
	if err := st.Revoke(ctx, "rev", at, "t"); err == nil {
		t.Error("revoking twice was accepted")
	}
	if err := st.Extend(ctx, "rev", RegistryDate("2015-01-01"), "t"); err == nil {
		t.Error("extending a revoked order was accepted")
	}
	if err := st.Revoke(ctx, "nope", at, "t"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("revoking a missing order: %v; want ErrNotFound", err)
	}
	if s2 := regSerial(t, st); s2 != s {
		t.Errorf("refused changes changed the serial: %d -> %d", s, s2)
	}
	if sum, _, _ := regOrderOf(t, st, "keep"); sum.Revoked {
		t.Error("revoking one order revoked another")
	}
}

// The audit trail of an order is its own changes, in order, each with its
// actor, time and detail.
func testRegistryAuditTrail(t *testing.T, st registry.Store) {
	ctx := t.Context()
	start := time.Now()
	res := regImport(t, st, regOrder("aud", "2011-03-16", "2013-03-16"), RegistryIndicator(t, "a.example.com"), RegistryIndicator(t, "b.example.com"))
	regImport(t, st, regOrder("noise", "2011-03-16", "2013-03-16"), RegistryIndicator(t, "n.example.com"))
	if _, err := st.Import(ctx, registry.Order{Case: "aud"}, []registry.Indicator{RegistryIndicator(t, "b.example.com"), RegistryIndicator(t, "c.example.com")}, "carol", false); err != nil {
		t.Fatal(err)
	}
	if err := st.Extend(ctx, "aud", RegistryDate("2014-01-01"), "dave"); err != nil {
		t.Fatal(err)
	}
	revokedAt := RegistryDate("2013-01-01")
	if err := st.Revoke(ctx, "aud", revokedAt, "erin"); err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	_, _, trail := regOrderOf(t, st, "aud")
	want := []registry.AuditRecord{
		{Actor: "tester", Action: "create", Detail: `court="W.D. Wash." effective=2011-03-16T00:00:00Z expires=2013-03-16T00:00:00Z`},
		{Actor: "tester", Action: "import", Detail: "2 indicators added, 0 already present"},
		{Actor: "carol", Action: "import", Detail: "1 indicators added, 1 already present"},
		{Actor: "dave", Action: "extend", Detail: "expires 2013-03-16T00:00:00Z -> 2014-01-01T00:00:00Z"},
		{Actor: "erin", Action: "revoke", At: revokedAt},
	}
	if len(trail) != len(want) {
		t.Fatalf("audit trail %+v; want %d records", trail, len(want))
	}
	for i, w := range want {
		a := trail[i]
		if a.Actor != w.Actor || a.Action != w.Action || a.Detail != w.Detail || a.OrderID != res.OrderID {
			t.Errorf("record %d: %+v; want %+v of order %d", i, a, w, res.OrderID)
		}
		if !w.At.IsZero() {
			if !a.At.Equal(w.At) {
				t.Errorf("record %d at %v; want %v", i, a.At, w.At)
			}
		} else if a.At.Before(start.Truncate(time.Microsecond)) || a.At.After(end) {
			t.Errorf("record %d at %v; want between %v and %v", i, a.At, start, end)
		}
		if a.At.Location() != time.UTC {
			t.Errorf("record %d: time not in UTC", i)
		}
	}
	if !trail[0].At.Equal(trail[1].At) {
		t.Errorf("an import's create and import records are at %v and %v; want one instant", trail[0].At, trail[1].At)
	}
	sum, _, _ := regOrderOf(t, st, "aud")
	if sum.Created.Before(start.Truncate(time.Microsecond)) || sum.Created.After(end) || !sum.Created.Equal(trail[0].At) {
		t.Errorf("order created %v; want its create record's time %v", sum.Created, trail[0].At)
	}
}

// The serial increases with every change and with nothing else: reads,
// dry runs, refused changes and an import that adds nothing leave it.
func testRegistrySerial(t *testing.T, st registry.Store) {
	ctx := t.Context()
	last := regSerial(t, st)
	changed := func(what string) {
		t.Helper()
		s := regSerial(t, st)
		if s <= last {
			t.Errorf("%s: serial %d -> %d; want an increase", what, last, s)
		}
		last = s
	}
	same := func(what string) {
		t.Helper()
		if s := regSerial(t, st); s != last {
			t.Errorf("%s: serial %d -> %d; want it unchanged", what, last, s)
		}
	}
	read := func() {
		regActive(t, st, RegistryDate("2012-01-01"), "")
		regActive(t, st, RegistryDate("2012-01-01"), "s")
		regOrders(t, st)
		st.Order(ctx, "s")
		st.Order(ctx, "nope")
		regSerial(t, st)
	}
	read()
	same("reads of an empty registry")
	o := regOrder("s", "2011-03-16", "2013-03-16")
	ind := RegistryIndicator(t, "s.example.com")
	st.Import(ctx, o, []registry.Indicator{ind}, "t", true)
	same("a dry run")
	regImport(t, st, o, ind)
	changed("an import creating the order")
	read()
	same("reads")
	regImport(t, st, registry.Order{Case: "s"}, RegistryIndicator(t, "t.example.com"))
	changed("an import adding to it")
	regImport(t, st, registry.Order{Case: "s"}, ind)
	same("an import adding nothing")
	if err := st.Extend(ctx, "s", RegistryDate("2014-01-01"), "t"); err != nil {
		t.Fatal(err)
	}
	changed("an extension")
	st.Extend(ctx, "s", RegistryDate("2000-01-01"), "t")
	same("a refused extension")
	if err := st.Revoke(ctx, "s", RegistryDate("2012-01-01"), "t"); err != nil {
		t.Fatal(err)
	}
	changed("a revocation")
	st.Revoke(ctx, "s", RegistryDate("2012-01-01"), "t")
	same("a refused revocation")
	read()
	same("reads")
	if set := regActive(t, st, RegistryDate("2012-01-01"), ""); set.Serial != last {
		t.Errorf("the active set's serial is %d; the store's %d", set.Serial, last)
	}
}

// An order is found by its case ID first, then by its numeric ID: a case
// whose ID is another order's number is found by it.
func testRegistryOrderLookup(t *testing.T, st registry.Store) {
	ctx := t.Context()
	a := regImport(t, st, regOrder("alpha", "2011-03-16", "2013-03-16"), RegistryIndicator(t, "a.example.com"))
	numeric := strconv.FormatInt(a.OrderID, 10)
	b := regImport(t, st, regOrder(numeric, "2011-03-16", "2013-03-16"), RegistryIndicator(t, "b.example.com"))
	if b.OrderID == a.OrderID {
		t.Fatalf("two orders with ID %d", a.OrderID)
	}
	for _, c := range []struct {
		id   string
		want int64
	}{{"alpha", a.OrderID}, {numeric, b.OrderID}, {strconv.FormatInt(b.OrderID, 10), b.OrderID}} {
		sum, _, _ := regOrderOf(t, st, c.id)
		if sum.ID != c.want {
			t.Errorf("Order(%q) is order %d (case %s); want %d", c.id, sum.ID, sum.Case, c.want)
		}
	}
	for _, id := range []string{"", "beta", "999", "-1", "ALPHA"} {
		if _, _, _, err := st.Order(ctx, id); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Order(%q): %v; want ErrNotFound", id, err)
		}
	}
	// Changes find the order the same way: this revokes case b, not alpha.
	if err := st.Revoke(ctx, numeric, RegistryDate("2012-01-01"), "t"); err != nil {
		t.Fatal(err)
	}
	if sum, _, _ := regOrderOf(t, st, "alpha"); sum.Revoked {
		t.Error("revoking by case ID revoked the order with that number")
	}
	if sum, _, _ := regOrderOf(t, st, strconv.FormatInt(b.OrderID, 10)); !sum.Revoked {
		t.Error("the case named by the number was not revoked")
	}
}

// Orders lists every order, oldest first, with its indicator counts by
// kind.
func testRegistryOrders(t *testing.T, st registry.Store) {
	if os := regOrders(t, st); len(os) != 0 {
		t.Fatalf("empty registry: %d orders", len(os))
	}
	regImport(t, st, regOrder("zeta", "2011-03-16", "2013-03-16"), RegistryIndicator(t, "a.example.com"), RegistryIndicator(t, "b.example.com"), RegistryIndicator(t, "192.0.2.1"))
	regImport(t, st, regOrder("alpha", "2012-03-16", "2014-03-16"))
	regImport(t, st, regOrder("mid", "2011-03-16", "2013-03-16"), RegistryIndicator(t, "192.0.2.0/24"), registry.Indicator{Kind: registry.KindDGA, Value: "newgoz?count=20&key=01051935&tlds=example&margin=6h"})
	if err := st.Revoke(t.Context(), "mid", RegistryDate("2012-01-01"), "t"); err != nil {
		t.Fatal(err)
	}
	os := regOrders(t, st)
	var got []string
	for _, o := range os {
		got = append(got, fmt.Sprintf("%d %s revoked=%v %v", o.ID, o.Case, o.Revoked, o.Counts))
	}
	want := []string{"1 zeta revoked=false map[domain:2 ip:1]", "2 alpha revoked=false map[]", "3 mid revoked=true map[cidr:1 dga:1]"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("orders %q; want %q", got, want)
	}
	if len(os) == 3 {
		if o := os[1]; o.Court != "W.D. Wash." || !o.Effective.Equal(RegistryDate("2012-03-16")) || !o.Expires.Equal(RegistryDate("2014-03-16")) || o.Created.IsZero() {
			t.Errorf("order alpha: %+v", o.Order)
		}
	}
}

// Every field of an order and its indicators is stored as given, times to
// the nanosecond and in UTC, and the indicators come by kind, then value
// bytewise.
func testRegistryRoundTrip(t *testing.T, st registry.Store) {
	zone := time.FixedZone("UTC-5", -5*3600)
	o := registry.Order{Case: "W.D. Wash. 2:11-cv-00222", Court: "W.D. Wash.", Title: "Microsoft v. John Does 1-11", Family: "rustock",
		Notes: "sealed until 2011-03-17; ünïcode ✓", Effective: time.Date(2011, 3, 16, 9, 30, 0, 123456789, zone), Expires: time.Date(2013, 3, 16, 0, 0, 0, 1, time.UTC)}
	a := RegistryIndicator(t, "ab.example.com")
	b := RegistryIndicator(t, "a-c.example.com")
	b.Family, b.Note, b.Source = "rustock-b", "from the complaint's appendix A", "order.csv:7"
	b.From, b.Until = time.Date(2011, 4, 1, 0, 0, 0, 999, zone), time.Date(2012, 4, 1, 0, 0, 0, 0, time.UTC)
	ip := RegistryIndicator(t, "2001:db8::1")
	res := regImport(t, st, o, a, ip, b)
	sum, inds, _ := regOrderOf(t, st, o.Case)
	if sum.ID != res.OrderID || sum.Case != o.Case || sum.Court != o.Court || sum.Title != o.Title || sum.Family != o.Family || sum.Notes != o.Notes {
		t.Errorf("order %+v; want %+v", sum.Order, o)
	}
	for _, c := range []struct {
		name      string
		got, want time.Time
	}{{"effective", sum.Effective, o.Effective}, {"expires", sum.Expires, o.Expires}} {
		if !c.got.Equal(c.want) || c.got.Location() != time.UTC {
			t.Errorf("%s %v; want %v in UTC", c.name, c.got, c.want)
		}
	}
	if sum.Revoked || !sum.RevokedAt.IsZero() {
		t.Errorf("a new order is revoked (%v at %v)", sum.Revoked, sum.RevokedAt)
	}
	var got []string
	for _, ind := range inds {
		got = append(got, string(ind.Kind)+" "+ind.Value)
	}
	if want := []string{"domain a-c.example.com", "domain ab.example.com", "ip 2001:db8::1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("indicators %q; want %q", got, want)
	}
	g := inds[0]
	if g.Family != b.Family || g.Note != b.Note || g.Source != b.Source || !g.From.Equal(b.From) || !g.Until.Equal(b.Until) || g.From.Location() != time.UTC {
		t.Errorf("indicator %+v; want %+v", g, b)
	}
	if !inds[1].From.IsZero() || !inds[1].Until.IsZero() || inds[1].Family != "" || len(inds[1].Skipped) != 0 {
		t.Errorf("indicator without a window: %+v", inds[1])
	}
	if sum.Counts[registry.KindDomain] != 2 || sum.Counts[registry.KindIP] != 1 || len(sum.Counts) != 2 {
		t.Errorf("counts %v", sum.Counts)
	}
}

// A dga indicator is stored with the guard's refusals; the active set
// holds the names it generates in force at the instant (never a refused
// one), and its next change is a generated name's margin edge.
func testRegistryGenerated(t *testing.T, st registry.Store) {
	ctx := t.Context()
	o := registry.Order{Case: "c-dga", Court: "court", Family: "gameover", Effective: RegistryDate("2026-03-10").Add(6 * time.Hour), Expires: RegistryDate("2026-03-20")}
	gen := registry.Indicator{Kind: registry.KindDGA, Value: "newgoz?count=20&key=01051935&tlds=example&margin=6h", Source: "order.txt:2"}
	sp, err := registry.DGASpec(gen)
	if err != nil {
		t.Fatal(err)
	}
	day12 := RegistryDate("2026-03-12")
	victim := sp.Domains(day12)[3]
	guard, err := registry.NewGuard([]string{victim})
	if err != nil {
		t.Fatal(err)
	}
	if _, skipped, err := registry.CheckGenerated(o, &gen, guard); err != nil || skipped != 1 {
		t.Fatalf("CheckGenerated: %d skipped, %v", skipped, err)
	}
	res := regImport(t, st, o, gen, RegistryIndicator(t, "fixed.example.com"))
	if res.Added != 2 {
		t.Fatalf("import: %+v", res)
	}
	sum, inds, _ := regOrderOf(t, st, "c-dga")
	if sum.Counts[registry.KindDGA] != 1 || sum.Counts[registry.KindDomain] != 1 || len(inds) != 2 || inds[0].Kind != registry.KindDGA {
		t.Fatalf("order: counts %v, indicators %+v", sum.Counts, inds)
	}
	if regSkips(inds[0].Skipped) != regSkips(gen.Skipped) || inds[0].Value != gen.Value || inds[0].Source != gen.Source {
		t.Fatalf("stored generator %+v; want skips %+v", inds[0], gen.Skipped)
	}
	if inds[1].Skipped != nil {
		t.Errorf("a fixed indicator has skips: %+v", inds[1].Skipped)
	}

	noon := day12.Add(12 * time.Hour)
	set := regActive(t, st, noon, "")
	want, next, err := registry.InForce(sum.Order, inds[0], noon)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, registry.Entry{Kind: registry.KindDomain, Value: "fixed.example.com", Family: "gameover", Case: "c-dga", Court: "court",
		OrderID: res.OrderID, Effective: o.Effective, Expires: o.Expires})
	registry.SortEntries(want)
	if len(want) != 20 {
		t.Fatalf("InForce gives %d names at noon; want 19 and the fixed one", len(want))
	}
	wantSet := &registry.ActiveSet{At: noon, Serial: set.Serial, Entries: want, NextChange: next}
	if got, want := RegistrySetString(set), RegistrySetString(wantSet); got != want {
		t.Errorf("active set at noon:\n%s\nwant\n%s", got, want)
	}
	for _, e := range set.Entries {
		if e.Value == victim {
			t.Errorf("the refused name %s is in force", victim)
		}
	}
	if !set.NextChange.Equal(next) || !next.Equal(day12.Add(18*time.Hour)) {
		t.Errorf("next change %v; want the next day's names' start %v", set.NextChange, day12.Add(18*time.Hour))
	}
	if set := regActive(t, st, RegistryDate("2026-03-10"), ""); len(set.Entries) != 0 || !set.NextChange.Equal(o.Effective) {
		t.Errorf("before the order: %d entries, next change %v", len(set.Entries), set.NextChange)
	}
	if set := regActive(t, st, noon, "other"); len(set.Entries) != 0 {
		t.Errorf("another case's set holds %d names", len(set.Entries))
	}
	// Importing the generator again adds nothing, not even its skips.
	again := gen
	again.Skipped = append([]registry.Skip{{Name: "extra.example", Day: day12, Reason: "test"}}, gen.Skipped...)
	if res := regImport(t, st, registry.Order{Case: "c-dga"}, again); res.Added != 0 || res.AlreadyPresent != 1 {
		t.Fatalf("re-import: %+v", res)
	}
	if _, inds, _ := regOrderOf(t, st, "c-dga"); regSkips(inds[0].Skipped) != regSkips(gen.Skipped) {
		t.Errorf("skips after re-import: %+v", inds[0].Skipped)
	}
	// What the range export reads through the interface.
	rng, err := registry.ActiveRange(ctx, st, day12, day12, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rng.Entries) != 20 {
		t.Errorf("range of day 12: %d entries; want 19 names and the fixed one", len(rng.Entries))
	}
	if err := st.Revoke(ctx, "c-dga", day12, "t"); err != nil {
		t.Fatal(err)
	}
	if set := regActive(t, st, noon, ""); len(set.Entries) != 0 || !set.NextChange.IsZero() {
		t.Errorf("after revocation: %d entries, next change %v", len(set.Entries), set.NextChange)
	}
}

// Writers that import into one new case at once create it once and add
// every indicator once; each change is audited and counted.
func testRegistryConcurrentImports(t *testing.T, st registry.Store) {
	const writers = 8
	o := regOrder("race", "2011-03-16", "2013-03-16")
	s0 := regSerial(t, st)
	results := make([]registry.ImportResult, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	shared := RegistryIndicator(t, "shared.example.com")
	for i := range writers {
		own := RegistryIndicator(t, fmt.Sprintf("own-%d.example.com", i))
		wg.Go(func() {
			results[i], errs[i] = st.Import(t.Context(), o, []registry.Indicator{shared, own}, fmt.Sprintf("writer-%d", i), false)
		})
	}
	wg.Wait()
	var created, added, present int
	for i := range writers {
		if errs[i] != nil {
			t.Fatalf("writer %d: %v", i, errs[i])
		}
		r := results[i]
		if r.Created {
			created++
		}
		added += r.Added
		present += r.AlreadyPresent
		if r.OrderID != results[0].OrderID {
			t.Errorf("writer %d imported into order %d, writer 0 into %d", i, r.OrderID, results[0].OrderID)
		}
	}
	if created != 1 || added != writers+1 || present != writers-1 {
		t.Errorf("%d created, %d added, %d already present; want 1, %d, %d", created, added, present, writers+1, writers-1)
	}
	if s := regSerial(t, st); s < s0+writers {
		t.Errorf("serial %d -> %d after %d changes", s0, s, writers)
	}
	sum, inds, trail := regOrderOf(t, st, "race")
	if len(inds) != writers+1 || sum.Counts[registry.KindDomain] != writers+1 {
		t.Errorf("%d indicators; want %d", len(inds), writers+1)
	}
	if want := "create " + strings.Repeat("import ", writers); regActions(trail) != want {
		t.Errorf("audit trail %q; want %q", regActions(trail), want)
	}
	if os := regOrders(t, st); len(os) != 1 {
		t.Errorf("%d orders", len(os))
	}
}
