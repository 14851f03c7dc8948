package netscope

import (
	"net/netip"
	"testing"
)

func TestCovers(t *testing.T) {
	n, err := ParseNetworks("AS64500, 192.0.2.0/24, ::ffff:198.51.100.0/120, 2001:db8::/32, de, 203.0.113.7")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ip      string
		asn     uint32
		country string
		want    bool
	}{
		{"192.0.2.1", 0, "", true},
		{"::ffff:192.0.2.1", 0, "", true}, // IPv4-mapped IPv6 is IPv4
		{"192.0.3.1", 0, "", false},
		{"198.51.100.9", 0, "", true}, // mapped prefix given, IPv4 row
		{"::ffff:198.51.100.9", 0, "", true},
		{"198.51.101.9", 0, "", false},
		{"2001:db8:ffff::1", 0, "", true},
		{"2001:db9::1", 0, "", false},
		{"::ffff:c000:201", 0, "", true}, // 192.0.2.1 written in hex
		{"::c000:201", 0, "", false},     // IPv4-compatible is not IPv4
		{"203.0.113.7", 0, "", true},
		{"203.0.113.8", 0, "", false},
		{"10.0.0.1", 64500, "", true},
		{"10.0.0.1", 64501, "", false},
		{"10.0.0.1", 0, "DE", true},
		{"10.0.0.1", 0, "de", true},
		{"10.0.0.1", 0, "FR", false},
	}
	for _, tt := range tests {
		if got := n.Covers(netip.MustParseAddr(tt.ip), tt.asn, tt.country); got != tt.want {
			t.Errorf("Covers(%s, %d, %q) = %v, want %v", tt.ip, tt.asn, tt.country, got, tt.want)
		}
	}
	if (Networks{}).Covers(netip.MustParseAddr("192.0.2.1"), 0, "") {
		t.Error("empty networks cover an address")
	}
	if n.Covers(netip.Addr{}, 64500, "DE") {
		t.Error("an invalid address is covered")
	}
}

func TestParseNetworksErrors(t *testing.T) {
	for _, s := range []string{"AS0", "ASX", "192.0.2.0/33", "bogus", "fe80::1%eth0", "99999999999"} {
		if _, err := ParseNetworks(s); err == nil {
			t.Errorf("ParseNetworks(%q) accepted", s)
		}
	}
	n, err := ParseNetworks("as64500,192.0.2.5/24,DE,de")
	if err != nil {
		t.Fatal(err)
	}
	if got := n.String(); got != "AS64500,192.0.2.0/24,DE" {
		t.Errorf("String() = %q", got)
	}
}

func FuzzParseNetworks(f *testing.F) {
	for _, s := range []string{"AS64500,192.0.2.0/24,DE", "::ffff:1.2.3.4/120", "2001:db8::/32", "1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseNetworks(s)
		if err != nil {
			return
		}
		// What String writes, ParseNetworks reads back the same.
		m, err := ParseNetworks(n.String())
		if err != nil || m.String() != n.String() {
			t.Fatalf("round trip %q -> %q -> %q (%v)", s, n.String(), m.String(), err)
		}
		for _, p := range n.Prefixes {
			if p.Addr().Is4In6() {
				t.Fatalf("mapped prefix %s kept", p)
			}
		}
	})
}

func BenchmarkCovers(b *testing.B) {
	n, err := ParseNetworks("AS64500,AS64501,192.0.2.0/24,198.51.100.0/24,2001:db8::/32,DE,FR")
	if err != nil {
		b.Fatal(err)
	}
	ip := netip.MustParseAddr("::ffff:203.0.113.9")
	for b.Loop() {
		if n.Covers(ip, 64999, "US") {
			b.Fatal("covered")
		}
	}
}
