package netprefix

import (
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, want string // want "": an error
	}{
		{"192.0.2.0/24", "192.0.2.0/24"},
		{"192.0.2.77/24", "192.0.2.0/24"}, // masked
		{"192.0.2.7", "192.0.2.7/32"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},           // mapped address is IPv4
		{"::ffff:198.51.100.0/120", "198.51.100.0/24"}, // mapped prefix is IPv4
		{"::ffff:0:0/96", "0.0.0.0/0"},                 // all of IPv4
		{"::ffff:0:0/95", "::fffe:0:0/95"},             // wider than IPv4: stays IPv6, masked
		{"::/0", "::/0"},
		{"0.0.0.0/0", "0.0.0.0/0"},
		{"192.0.2.0/33", ""},
		{"192.0.2", ""},
		{"fe80::1%eth0", ""},
		{"fe80::1%eth0/64", ""},
		{"example.org", ""},
		{"", ""},
		{" 192.0.2.1", ""}, // callers trim
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := Parse(tt.in)
			switch {
			case tt.want == "" && err == nil:
				t.Fatalf("Parse(%q) = %s, want an error", tt.in, p)
			case tt.want != "" && err != nil:
				t.Fatalf("Parse(%q): %v", tt.in, err)
			case tt.want != "" && p.String() != tt.want:
				t.Fatalf("Parse(%q) = %s, want %s", tt.in, p, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"192.0.2.0/24", "::ffff:1.2.3.4/120", "2001:db8::1", "fe80::1%eth0", "1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		if !p.IsValid() || p != p.Masked() || (p.Addr().Is4In6() && p.Bits() >= 96) || p.Addr().Zone() != "" {
			t.Fatalf("Parse(%q) = %s: not canonical", s, p)
		}
		// What Parse returns, it reads back the same.
		if q, err := Parse(p.String()); err != nil || q != p {
			t.Fatalf("round trip %q -> %s -> %s (%v)", s, p, q, err)
		}
		if Canonical(p) != p {
			t.Fatalf("Canonical(%s) = %s", p, Canonical(p))
		}
	})
}
