package export

import (
	"bytes"
	"cmp"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/takedown/takedown/internal/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// The fixture's instants: orders in force from effective; the first one
// expires at shortExpiry, the others at longExpiry.
var (
	effective   = time.Date(2011, 3, 16, 0, 0, 0, 0, time.UTC)
	fixtureAt   = time.Date(2011, 9, 13, 12, 0, 0, 0, time.UTC)
	shortExpiry = time.Date(2012, 3, 16, 0, 0, 0, 0, time.UTC)
	longExpiry  = time.Date(2013, 3, 16, 0, 0, 0, 0, time.UTC)
)

// sinkholeOpts are the options of the golden files.
func sinkholeOpts(action string) Options {
	return Options{
		SinkholeA:    netip.MustParseAddr("192.0.2.53"),
		SinkholeAAAA: netip.MustParseAddr("2001:db8:53::53"),
		Action:       action,
	}
}

// entry builds one entry of the fixture.
func entry(tb testing.TB, kind registry.Kind, value, caseID string, expires time.Time) registry.Entry {
	tb.Helper()
	e := registry.Entry{Kind: kind, Value: value, Case: caseID, OrderID: 1, Effective: effective, Expires: expires}
	switch caseID {
	case "rustock-2011":
		e.Court, e.Family, e.OrderID = "U.S. District Court, W.D. Wash.", "rustock", 1
	case "waledac-2010":
		e.Court, e.Family, e.OrderID = "E.D. Va.", "waledac", 2
	default:
		e.Court, e.OrderID = "Court \"of\"; test\nsecond line", 3
	}
	if kind == registry.KindIP || kind == registry.KindCIDR {
		p, ok := entryPrefix(&e)
		if !ok {
			tb.Fatalf("bad fixture address %q", value)
		}
		e.Prefix = p
	}
	return e
}

// newSet sorts entries as the registry does (kind, value, case).
func newSet(at time.Time, serial uint32, entries []registry.Entry) *registry.ActiveSet {
	slices.SortFunc(entries, func(a, b registry.Entry) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Value, b.Value), cmp.Compare(a.Case, b.Case))
	})
	return &registry.ActiveSet{At: at, Serial: serial, Entries: entries}
}

// fixture is a set with every kind, IDN, overlaps and hostile case text.
func fixture(tb testing.TB) *registry.ActiveSet {
	tb.Helper()
	const r, w, x = "rustock-2011", "waledac-2010", "case \"x\"; y\n; injected"
	return newSet(fixtureAt, 2011091301, []registry.Entry{
		entry(tb, registry.KindDomain, "c2.example", r, shortExpiry),
		entry(tb, registry.KindDomain, "sub.c2.example", w, longExpiry),     // covered by c2.example
		entry(tb, registry.KindHost, "www.c2.example", w, longExpiry),       // covered by c2.example
		entry(tb, registry.KindDomain, "xn--80ak6aa92e.com", w, longExpiry), // IDN, A-label
		entry(tb, registry.KindDomain, "both.example.org", r, longExpiry),   // in two cases
		entry(tb, registry.KindDomain, "both.example.org", w, longExpiry),
		entry(tb, registry.KindHost, "exact.example.net", x, longExpiry),
		entry(tb, registry.KindHost, "same.example.net", r, longExpiry), // also a domain
		entry(tb, registry.KindDomain, "same.example.net", w, longExpiry),
		entry(tb, registry.KindIP, "198.51.100.7", r, longExpiry), // inside 198.51.100.0/24
		entry(tb, registry.KindCIDR, "198.51.100.0/24", w, longExpiry),
		entry(tb, registry.KindCIDR, "203.0.113.128/25", x, longExpiry),
		entry(tb, registry.KindIP, "2001:db8::1:0:0:7", r, longExpiry),
		entry(tb, registry.KindCIDR, "2001:db8:1::/48", w, longExpiry),
		entry(tb, registry.KindIP, "2001:db8:1::53", w, longExpiry), // inside 2001:db8:1::/48
	})
}

// exportString runs one format.
func exportString(tb testing.TB, name string, set *registry.ActiveSet, opt Options) string {
	tb.Helper()
	e, err := Lookup(name)
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if err := e.Export(&buf, set, opt); err != nil {
		tb.Fatalf("export %s: %v", name, err)
	}
	return buf.String()
}

// goldenCases are the golden files: every format with local data, and the
// DNS formats with NXDOMAIN.
func goldenCases() []struct{ file, format, action string } {
	var cs []struct{ file, format, action string }
	for _, n := range Names() {
		cs = append(cs, struct{ file, format, action string }{n + ".golden", n, ActionLocal})
	}
	for _, n := range []string{"rpz", "hosts", "dnsmasq", "unbound"} {
		cs = append(cs, struct{ file, format, action string }{n + "-nxdomain.golden", n, ActionNXDOMAIN})
	}
	return cs
}

func TestGolden(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.file, func(t *testing.T) {
			got := exportString(t, c.format, fixture(t), sinkholeOpts(c.action))
			path := filepath.Join("testdata", c.file)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", c.format, lineDiff(string(want), got))
			}
		})
	}
}

// lineDiff shows the first lines where want and got differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + itoa(i+1) + ":\n want: " + wl + "\n  got: " + gl
		}
	}
	return "(same lines)"
}

func TestDeterministic(t *testing.T) {
	// Planning goes through maps: two exports of the same set must still
	// be byte-identical, and so must a set whose entries came in another
	// order (the DNS and firewall formats do not depend on entry order).
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			first := exportString(t, name, fixture(t), sinkholeOpts(""))
			for range 5 {
				if again := exportString(t, name, fixture(t), sinkholeOpts("")); again != first {
					t.Fatalf("second export differs:\n%s", lineDiff(first, again))
				}
			}
			switch name {
			case "csv", "json", "stix": // these keep the set's own order
				return
			}
			set := fixture(t)
			slices.Reverse(set.Entries)
			if got := exportString(t, name, set, sinkholeOpts("")); got != first {
				t.Fatalf("export of reordered entries differs:\n%s", lineDiff(first, got))
			}
		})
	}
}

func TestLookup(t *testing.T) {
	want := []string{"rpz", "hosts", "dnsmasq", "unbound", "nftables", "suricata", "stix", "csv", "json"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, n := range want {
		e, err := Lookup(n)
		if err != nil || e.Name() != n {
			t.Errorf("Lookup(%q) = %v, %v", n, e, err)
		}
	}
	_, err := Lookup("bind")
	if err == nil || !strings.Contains(err.Error(), "rpz, hosts, dnsmasq") {
		t.Errorf("Lookup(bind) error = %v, want one listing the formats", err)
	}
}

func TestOptionErrors(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	tests := []struct {
		name   string
		format string
		opt    Options
		want   string // substring of the error; "" for success
	}{
		{"rpz local without sinkhole", "rpz", Options{}, "needs a sinkhole"},
		{"unbound local without sinkhole", "unbound", Options{}, "needs a sinkhole"},
		{"dnsmasq local without sinkhole", "dnsmasq", Options{}, "needs a sinkhole"},
		{"hosts without sinkhole", "hosts", Options{}, ""},
		{"rpz nxdomain without sinkhole", "rpz", Options{Action: ActionNXDOMAIN}, ""},
		{"rpz AAAA only", "rpz", Options{SinkholeAAAA: v6}, ""},
		{"unknown action", "rpz", Options{SinkholeA: v4, Action: "drop"}, "unknown action"},
		{"A not IPv4", "rpz", Options{SinkholeA: v6}, "not IPv4"},
		{"AAAA not IPv6", "rpz", Options{SinkholeAAAA: v4}, "not IPv6"},
		{"bad origin", "rpz", Options{SinkholeA: v4, Origin: "bad origin;x"}, "bad RPZ origin"},
		{"origin with trailing dot", "rpz", Options{SinkholeA: v4, Origin: "RPZ.Example.Org."}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Lookup(tc.format)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			err = e.Export(&buf, fixture(t), tc.opt)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			case tc.want != "" && buf.Len() > 0:
				t.Fatalf("wrote %d bytes despite the error", buf.Len())
			}
		})
	}
}

func TestRPZOriginNormalised(t *testing.T) {
	out := exportString(t, "rpz", fixture(t), Options{SinkholeA: netip.MustParseAddr("192.0.2.1"), Origin: "RPZ.Example.Org."})
	if !strings.Contains(out, "\n$ORIGIN rpz.example.org.\n") {
		t.Errorf("origin not normalised:\n%s", out)
	}
}

func TestRPZIPTrigger(t *testing.T) {
	tests := []struct{ prefix, want string }{
		{"198.51.100.7/32", "32.7.100.51.198.rpz-ip"},
		{"198.51.100.0/24", "24.0.100.51.198.rpz-ip"},
		{"0.0.0.0/0", "0.0.0.0.0.rpz-ip"},
		{"2001:db8::/32", "32.zz.db8.2001.rpz-ip"},
		{"2001:db8::1:0:0:7/128", "128.7.0.0.1.zz.db8.2001.rpz-ip"}, // first of two equal runs
		{"2001:db8:0:1::1/128", "128.1.zz.1.0.db8.2001.rpz-ip"},     // the longer run, not the first
		{"1:0:1:0:1:0:1:0/128", "128.0.1.0.1.0.1.0.1.rpz-ip"},       // no run of two: no zz
		{"::/0", "0.zz.rpz-ip"},
		{"::1/128", "128.1.zz.rpz-ip"},
		{"fe80::/10", "10.zz.fe80.rpz-ip"},
	}
	for _, tc := range tests {
		t.Run(tc.prefix, func(t *testing.T) {
			if got := rpzIPTrigger(netip.MustParsePrefix(tc.prefix)); got != tc.want {
				t.Errorf("rpzIPTrigger(%s) = %s, want %s", tc.prefix, got, tc.want)
			}
		})
	}
}

func TestPlanCoverage(t *testing.T) {
	p := planOf(fixture(t))
	var names []string
	for _, r := range p.names {
		names = append(names, r.name)
		if r.name == "same.example.net" && !r.domain {
			t.Errorf("same.example.net is seized as a domain too, planned as a host")
		}
		if r.name == "both.example.org" && r.cases != "rustock-2011, waledac-2010" {
			t.Errorf("both.example.org cases = %v, want both", r.cases)
		}
	}
	want := []string{"both.example.org", "c2.example", "exact.example.net", "same.example.net", "xn--80ak6aa92e.com"}
	if !slices.Equal(names, want) {
		t.Errorf("planned names = %v, want %v", names, want)
	}
	if p.covered != 2 {
		t.Errorf("covered = %d, want 2 (sub.c2.example, www.c2.example)", p.covered)
	}
	v4, v6, contained := mergePrefixes(p.addrs)
	if got := fmtPrefixes(v4); got != "198.51.100.0/24 203.0.113.128/25" {
		t.Errorf("IPv4 elements = %s", got)
	}
	if got := fmtPrefixes(v6); got != "2001:db8::1:0:0:7/128 2001:db8:1::/48" {
		t.Errorf("IPv6 elements = %s", got)
	}
	if contained != 2 {
		t.Errorf("contained = %d, want 2", contained)
	}
}

func fmtPrefixes(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, " ")
}

func TestHostileTextStaysInComments(t *testing.T) {
	// The fixture's third case holds a newline and "; injected": in every
	// line format it must stay inside a comment or a quoted msg.
	for _, name := range []string{"rpz", "hosts", "dnsmasq", "unbound", "nftables", "suricata"} {
		t.Run(name, func(t *testing.T) {
			out := exportString(t, name, fixture(t), sinkholeOpts(""))
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "; injected") || strings.HasPrefix(line, "second line") {
					t.Errorf("user text escaped onto its own line: %q", line)
				}
			}
		})
	}
}

func TestEmptySet(t *testing.T) {
	set := newSet(fixtureAt, 1, nil)
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			if out := exportString(t, name, set, sinkholeOpts("")); out == "" {
				t.Error("empty output")
			}
		})
	}
	if out := exportString(t, "json", set, Options{}); !strings.Contains(out, `"entries":[]`) {
		t.Errorf("json of empty set = %s, want entries []", out)
	}
}

func TestHostsCoversBothFamilies(t *testing.T) {
	tests := []struct {
		name string
		opt  Options
		want []string
	}{
		{"A only", Options{SinkholeA: netip.MustParseAddr("192.0.2.1")}, []string{"192.0.2.1 c2.example", ":: c2.example"}},
		{"AAAA only", Options{SinkholeAAAA: netip.MustParseAddr("2001:db8::1")}, []string{"0.0.0.0 c2.example", "2001:db8::1 c2.example"}},
		{"none", Options{}, []string{"0.0.0.0 c2.example", ":: c2.example"}},
		{"nxdomain", Options{SinkholeA: netip.MustParseAddr("192.0.2.1"), Action: ActionNXDOMAIN}, []string{"0.0.0.0 c2.example", ":: c2.example"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, line := range strings.Split(exportString(t, "hosts", fixture(t), tc.opt), "\n") {
				if strings.HasSuffix(line, " c2.example") {
					got = append(got, line)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("c2.example lines = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPlainName(t *testing.T) {
	long := strings.Repeat("a", 63)
	tests := []struct {
		name string
		want bool
	}{
		{"c2.example", true},
		{"xn--80ak6aa92e.com", true},
		{"_dmarc.example", true},
		{"com", true},
		{"", false},
		{"C2.example", false},
		{".example", false},
		{"example.", false},
		{"a..b", false},
		{"a b.example", false},
		{"a\nb.example", false},
		{"*.example", false},
		{long + ".example", true},
		{long + "a.example", false},
		{strings.Repeat(long+".", 4)[:253], true},
		{strings.Repeat(long+".", 4)[:254], false},
	}
	for _, tc := range tests {
		if got := plainName(tc.name); got != tc.want {
			t.Errorf("plainName(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRPZSkipsNamesTooLongForTheOrigin(t *testing.T) {
	long := strings.Repeat(strings.Repeat("a", 63)+".", 3) + "example" // 199 bytes: fine alone
	set := newSet(fixtureAt, 1, []registry.Entry{entry(t, registry.KindDomain, long, "rustock-2011", longExpiry)})
	out := exportString(t, "rpz", set, Options{SinkholeA: netip.MustParseAddr("192.0.2.1"), Origin: strings.Repeat("o", 60) + ".example"})
	if !strings.Contains(out, "; skipped, too long") || strings.Contains(out, "\n"+long+" A") {
		t.Errorf("an over-long name was written:\n%s", out)
	}
}
