package api

import (
	"net/netip"
	"testing"
)

func FuzzDecodeCursor(f *testing.F) {
	f.Add(cursor{1764288000, netip.MustParseAddr("192.0.2.1"), "rustock"}.encode())
	f.Add(cursor{0, netip.MustParseAddr("2001:db8::1"), "a|b"}.encode())
	f.Add("!!")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor(s)
		if err != nil {
			return
		}
		d, err := decodeCursor(c.encode())
		if err != nil || d != c {
			t.Fatalf("round trip %+v -> %+v (%v)", c, d, err)
		}
	})
}
