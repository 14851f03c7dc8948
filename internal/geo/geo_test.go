package geo

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	geodata "github.com/takedown/takedown/data/geo"
)

// writeMMDB writes a database mapping each prefix to its record.
func writeMMDB(tb testing.TB, path string, recs map[string]mmdbtype.Map) {
	tb.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "test", IPVersion: 6, RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		tb.Fatal(err)
	}
	for p, v := range recs {
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			tb.Fatal(err)
		}
		if err := tree.Insert(n, v); err != nil {
			tb.Fatal(err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

func maxmindCountry(cc string) mmdbtype.Map {
	return mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(cc)}}
}

func TestLayouts(t *testing.T) {
	dir := t.TempDir()
	mmCountry := filepath.Join(dir, "mm-country.mmdb")
	writeMMDB(t, mmCountry, map[string]mmdbtype.Map{
		"198.51.100.0/24": maxmindCountry("DE"),
		"2001:db8::/32":   maxmindCountry("FR"),
		"203.0.113.0/24":  {"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String("JP")}},
	})
	flatCountry := filepath.Join(dir, "flat-country.mmdb")
	writeMMDB(t, flatCountry, map[string]mmdbtype.Map{
		"198.51.100.0/24": {"country_code": mmdbtype.String("us")},
	})
	asn := filepath.Join(dir, "asn.mmdb")
	writeMMDB(t, asn, map[string]mmdbtype.Map{
		"198.51.100.0/25": {"autonomous_system_number": mmdbtype.Uint32(64500), "autonomous_system_organization": mmdbtype.String("Example Net")},
		"2001:db8::/48":   {"autonomous_system_number": mmdbtype.Uint32(64501), "autonomous_system_organization": mmdbtype.String("Example Six")},
	})

	tests := []struct {
		name    string
		country string
		addr    string
		want    Info
	}{
		{"maxmind v4", mmCountry, "198.51.100.7", Info{"DE", 64500, "Example Net"}},
		{"maxmind v4 mapped", mmCountry, "::ffff:198.51.100.7", Info{"DE", 64500, "Example Net"}},
		{"maxmind v6", mmCountry, "2001:db8::1", Info{"FR", 64501, "Example Six"}},
		{"registered country fallback", mmCountry, "203.0.113.9", Info{Country: "JP"}},
		{"asn not covered", mmCountry, "198.51.100.200", Info{Country: "DE"}},
		{"flat layout upper-cased", flatCountry, "198.51.100.7", Info{"US", 64500, "Example Net"}},
		{"unknown address", flatCountry, "192.0.2.1", Info{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Open(Options{Country: Source{Path: tc.country}, ASN: Source{Path: asn}})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // the second lookup comes from the cache
				if got := d.Lookup(netip.MustParseAddr(tc.addr)); got != tc.want {
					t.Fatalf("Lookup(%s) = %+v, want %+v", tc.addr, got, tc.want)
				}
			}
		})
	}
}

func TestBundled(t *testing.T) {
	d, err := Open(Options{Country: Source{Data: geodata.Country()}, ASN: Source{Data: geodata.ASN()}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want Info
	}{
		{"1.0.0.1", Info{"AU", 13335, "Cloudflare, Inc."}},
		{"2001:200::1", Info{"AU", 2500, "WIDE Project"}}, // the NRO data says AU for 2001:200::/28
		{"2600::1", Info{"US", 174, "Cogent Communications"}},
	}
	for _, tc := range tests {
		if got := d.Lookup(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Lookup(%s) = %+v, want %+v", tc.addr, got, tc.want)
		}
		// The organisation by number is the one an address of it has.
		if got := d.ASOrg(tc.want.ASN); got != tc.want.Org {
			t.Errorf("ASOrg(%d) = %q, want %q", tc.want.ASN, got, tc.want.Org)
		}
	}
	if got := d.Lookup(netip.MustParseAddr("127.0.0.1")); got.ASN != 0 {
		t.Errorf("loopback has ASN %d", got.ASN)
	}
	for _, asn := range []uint32{0, 64501, 4294967295} { // none, private use, never allocated
		if got := d.ASOrg(asn); got != "" {
			t.Errorf("ASOrg(%d) = %q, want none", asn, got)
		}
	}
}

func TestASOrgReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "asn.mmdb")
	asn := func(n uint32, org string) mmdbtype.Map {
		return mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(n), "autonomous_system_organization": mmdbtype.String(org)}
	}
	writeMMDB(t, path, map[string]mmdbtype.Map{"198.51.100.0/24": asn(64501, "Old Name"), "203.0.113.0/24": asn(64502, "Other")})
	d, err := Open(Options{ASN: Source{Path: path}})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.ASOrg(64501); got != "Old Name" {
		t.Fatalf("ASOrg(64501) = %q", got)
	}
	writeMMDB(t, path, map[string]mmdbtype.Map{"198.51.100.0/24": asn(64501, "New Name")})
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	// The names follow the reloaded file, not the first one walked.
	if got, gone := d.ASOrg(64501), d.ASOrg(64502); got != "New Name" || gone != "" {
		t.Fatalf("after reload: ASOrg(64501) = %q, ASOrg(64502) = %q", got, gone)
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "country.mmdb")
	writeMMDB(t, path, map[string]mmdbtype.Map{"198.51.100.0/24": maxmindCountry("DE")})
	d, err := Open(Options{Country: Source{Path: path}})
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr("198.51.100.1")
	if got := d.Lookup(addr).Country; got != "DE" {
		t.Fatalf("before reload: %q", got)
	}

	// A broken file keeps the old database.
	if err := os.WriteFile(path, []byte("not an mmdb"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err == nil {
		t.Fatal("reload of a broken file succeeded")
	}
	if got := d.Lookup(addr).Country; got != "DE" {
		t.Fatalf("after failed reload: %q, want DE kept", got)
	}

	writeMMDB(t, path, map[string]mmdbtype.Map{"198.51.100.0/24": maxmindCountry("NL")})
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := d.Lookup(addr).Country; got != "NL" {
		t.Fatalf("after reload: %q, want NL", got)
	}
}

func TestOpenMissing(t *testing.T) {
	if _, err := Open(Options{Country: Source{Path: filepath.Join(t.TempDir(), "nope.mmdb")}}); err == nil {
		t.Fatal("opening a missing file succeeded")
	}
}

func BenchmarkLookup(b *testing.B) {
	d, err := Open(Options{Country: Source{Data: geodata.Country()}, ASN: Source{Data: geodata.ASN()}})
	if err != nil {
		b.Fatal(err)
	}
	addrs := make([]netip.Addr, 4096)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{byte(1 + i%200), byte(i * 7), byte(i * 13), 1})
	}
	i := 0
	for b.Loop() {
		d.Lookup(addrs[i&4095])
		i++
	}
}
